/**
 * A Cluster shard's replica rules (src/cluster/shard.ts), pure logic on plain data: the same
 * catching-up and master-name rules as Sentinel mode (src/sentinel/refresh-snapshot.ts,
 * src/replica-state.ts). The real-cluster behaviour is in test/cluster*.test.ts.
 */
import t from 'tap'
import { pino } from 'pino'
import { Breakers } from '../src/breakers.js'
import type { Config } from '../src/config.js'
import type { ClusterNode, ShardNodes } from '../src/cluster/nodes.js'
import { Shard } from '../src/cluster/shard.js'
import type { ReplicationInfo } from '../src/redis/parse.js'
import type { ReplicaLinks, SelfReport } from '../src/replica-links.js'

const M = '10.0.0.1:6379'
const node = (id: string, port: number, role: ClusterNode['role']): ClusterNode =>
  ({ id, host: `10.0.0.${port}`, port: 6379, role, masterId: role === 'master' ? null : 'm1', failed: false, suspected: false, epoch: 1, slots: role === 'master' ? [[0, 16383]] : [], migrating: [] })
const nodes: ShardNodes = { master: node('m1', 1, 'master'), replicas: [node('r1', 2, 'replica'), node('r2', 3, 'replica')] }
const info = (replid: string, offset: number, replicas: Array<[number, number]>): ReplicationInfo => ({
  role: 'master', masterReplOffset: offset, replid, replid2: '0000000000000000000000000000000000000000', secondReplOffset: -1,
  replicas: replicas.map(([last, off]) => ({ host: `10.0.0.${last}`, port: 6379, state: 'online', offset: off, lag: 0 }))
})
const config = { replicaMaxLagBytes: 0, breaker: { errorThresholdPercentage: 50, volumeThreshold: 5, resetTimeout: 1000, rollingCountTimeout: 1000 } } as unknown as Config
const host = { requestRefresh: () => {}, changedOrTimeout: async () => {} }
const linksFollowing = (master: string): ReplicaLinks =>
  ({ report: (): SelfReport => ({ role: 'slave', linkUp: true, syncing: false, loading: false, master }), linkNote: () => undefined }) as unknown as ReplicaLinks
const readable = (s: Shard): Record<string, string> =>
  Object.fromEntries(s.snapshot.replicas.map(r => [r.key, r.healthy ? 'readable' : r.reason ?? '']))

t.test('a replica that becomes readable must first hold the last write acknowledged on its shard', async t => {
  const breakers = new Breakers(config, pino({ level: 'silent' }))
  t.teardown(() => breakers.close())
  const shard = new Shard('m1', config, host, breakers)
  const links = linksFollowing(M)
  shard.update(nodes, info('a', 100, [[2, 100]]), links)
  t.same(readable(shard), { '10.0.0.2:6379': 'readable', '10.0.0.3:6379': 'not attached to the master' }, 'r2 not attached yet')

  shard.noteAcknowledged(M, 150)
  shard.markAcknowledged()
  shard.update(nodes, info('a', 160, [[2, 160], [3, 120]]), links)
  t.same(readable(shard), { '10.0.0.2:6379': 'readable', '10.0.0.3:6379': 'catching up: offset 120 behind the last acknowledged write (150)' },
    'r2 attached but behind the write acknowledged without it: not readable yet; r1 (counted by that write) stays readable')

  shard.markAcknowledged()
  shard.update(nodes, info('a', 160, [[2, 160], [3, 150]]), links)
  t.same(readable(shard), { '10.0.0.2:6379': 'readable', '10.0.0.3:6379': 'readable' }, 'it holds the write: readable')
})

t.test('the mark applies only to the master and history it was taken on', async t => {
  const breakers = new Breakers(config, pino({ level: 'silent' }))
  t.teardown(() => breakers.close())
  const fresh = (): Shard => {
    const s = new Shard('m1', config, host, breakers)
    s.update(nodes, info('a', 100, [[2, 100]]), linksFollowing(M))
    s.noteAcknowledged(M, 150)
    return s
  }
  const noMark = fresh()
  noMark.update(nodes, info('a', 160, [[2, 160], [3, 120]]), linksFollowing(M))
  t.equal(readable(noMark)['10.0.0.3:6379'], 'readable', 'no mark taken before the INFO read: nothing to compare with')

  const otherHistory = fresh()
  otherHistory.markAcknowledged()
  otherHistory.update(nodes, info('b', 160, [[2, 160], [3, 120]]), linksFollowing(M))
  t.equal(readable(otherHistory)['10.0.0.3:6379'], 'readable', 'the master changed history: offsets are not comparable')

  const used = fresh()
  used.markAcknowledged()
  used.update(nodes, info('a', 160, [[2, 160]]), linksFollowing(M))
  used.update(nodes, info('a', 160, [[2, 160], [3, 120]]), linksFollowing(M))
  t.equal(readable(used)['10.0.0.3:6379'], 'readable', 'a mark serves one refresh only')
})

t.test('while the shard master cannot be asked, a replica following another node is not readable', async t => {
  const breakers = new Breakers(config, pino({ level: 'silent' }))
  t.teardown(() => breakers.close())
  const shard = new Shard('m1', config, host, breakers)
  shard.update(nodes, null, linksFollowing('10.0.0.9:6379'))
  t.same(readable(shard), { '10.0.0.2:6379': 'replicates from 10.0.0.9:6379, not the master', '10.0.0.3:6379': 'replicates from 10.0.0.9:6379, not the master' },
    'master INFO failed and the replicas name another master: not readable')
  shard.update(nodes, null, linksFollowing(M))
  t.same(readable(shard), { '10.0.0.2:6379': 'readable', '10.0.0.3:6379': 'readable' }, 'they name the shard master: readable (possibly stale)')
})
