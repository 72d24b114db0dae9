// The same planned-failover scenario as the chaos suite, on Redis nodes configured with the
// server-side half of the guarantee (min-replicas-to-write / min-replicas-max-lag): still no
// failed PUT and no acknowledged write lost. (test/chaos.test.ts runs it without these settings.)
import t from 'tap'
import { plannedFailover } from './helpers/chaos-failover.js'
import { topologyFor } from './helpers/topology.js'

const topo = await topologyFor(t, { redisConf: ['min-replicas-to-write 1', 'min-replicas-max-lag 10'] })

t.test('a planned failover under write load loses nothing with min-replicas-to-write 1', async t => {
  const row = await plannedFailover(topo, { durationMs: 8000, writers: 10, failoverAtMs: 2000, plain: false })
  t.comment(`${row.requests} PUTs, ${row.failures} failed, ${row.lostAcknowledgedWrites} lost, longest ${row.longestRequestMs} ms`)
  t.ok(row.requests > 100, 'the load really ran')
  t.equal(row.failures, 0, 'no failed PUT')
  t.equal(row.lostAcknowledgedWrites, 0, 'no acknowledged write lost')
})
