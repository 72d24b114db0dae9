// The same planned-failover scenario as the chaos suite, on Redis nodes configured with the
// server-side half of the guarantee (min-replicas-to-write / min-replicas-max-lag): no PUT fails
// other than the 503s (nothing applied) of writes held while the old master rejoins, and no
// acknowledged write is lost. (test/chaos.test.ts runs it without these settings.)
import t from 'tap'
import { plannedFailover } from './helpers/chaos-failover.js'
import { failedChecks } from './helpers/chaos.js'
import { topologyFor } from './helpers/topology.js'

const topo = await topologyFor(t, { redisConf: ['min-replicas-to-write 1', 'min-replicas-max-lag 10'] })

t.test('a planned failover under write load loses nothing with min-replicas-to-write 1', async t => {
  // 16 s: writes are held for ~10 s after the switch, until the old master rejoins as a replica.
  const row = await plannedFailover(topo, { durationMs: 16_000, writers: 10, failoverAtMs: 2000, plain: false })
  t.comment(`${row.requests} PUTs, ${row.failures} failed, ${row.lostAcknowledgedWrites} lost, longest ${row.longestRequestMs} ms`)
  t.ok(row.requests > 100, 'the load really ran')
  t.same(failedChecks(row).map(c => `${c.name}: ${c.detail}`), [], 'every requirement of the planned failover met (only held writes answered 503)')
  t.equal(row.lostAcknowledgedWrites, 0, 'no acknowledged write lost')
})
