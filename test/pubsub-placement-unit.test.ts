// Where the pub/sub hub may subscribe (src/pubsub/placement.ts), pure logic: Sentinel mode keeps
// the master as the one source (a change is a gap) and only replicas that get its messages
// through replication; Cluster mode takes every shard's nodes on the cluster bus, no source.
import t from 'tap'
import { clusterNodes, sentinelNodes } from '../src/pubsub/placement.js'
import { emptySnapshot, type ReplicaState, type TopologySnapshot } from '../src/topology-types.js'

const replica = (port: number, over: Partial<ReplicaState> = {}): ReplicaState => ({
  key: `127.0.0.1:${port}`, host: '127.0.0.1', port, healthy: true, attached: true, lagBytes: 0, lagSeconds: 0, offset: 0, sentinelFlags: [], ...over
})
const snap = (master: number | null, replicas: ReplicaState[], over: Partial<TopologySnapshot> = {}): TopologySnapshot =>
  ({ ...emptySnapshot('m'), master: master === null ? null : { host: '127.0.0.1', port: master }, masterConfirmed: true, replicas, ...over })
const healthyOnly = (rs: readonly ReplicaState[]): ReplicaState[] => rs.filter(r => r.healthy)

t.test('Sentinel mode: the master is the source; a lagging attached replica keeps receiving, a flagged one does not', async t => {
  const n = sentinelNodes(snap(1, [
    replica(2),
    replica(3, { healthy: false, reason: 'lagging' }),
    replica(4, { healthy: false, attached: true, sentinelFlags: ['s_down'] }),
    replica(5, { healthy: false, attached: false })
  ]), healthyOnly)
  t.equal(n.source, '127.0.0.1:1')
  t.same(n.masters.map(m => m.port), [1])
  t.same(n.candidates.map(r => r.port), [2], 'moves only to a healthy replica')
  t.same([...n.receiving.keys()].sort(), ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'], 'stays on the master, a healthy or a lagging attached replica')
  t.equal(sentinelNodes(snap(1, [], { failoverInProgress: true }), healthyOnly).failoverInProgress, true)
  t.equal(sentinelNodes(snap(null, []), healthyOnly).source, null, 'no master known: no source')
})

t.test('Cluster mode: every shard\'s nodes, masters as fallback, no source; `fail`/`fail?` nodes are off the bus', async t => {
  const shards = [
    { snapshot: snap(10, [replica(11), replica(12, { sentinelFlags: ['fail?'] })]) },
    { snapshot: snap(20, [replica(21, { healthy: false, attached: true, reason: 'lagging' })]) },
    // The cluster flags this master failing: neither a fallback nor a place to stay.
    { snapshot: snap(30, [replica(31, { healthy: false, attached: false, sentinelFlags: ['fail'] })], { failoverInProgress: true }) }
  ]
  const n = clusterNodes(shards, healthyOnly)
  t.equal(n.source, null, 'a shard failover is no gap: PUBLISH crosses the cluster bus')
  t.equal(n.failoverInProgress, false)
  t.same(n.masters.map(m => m.port), [10, 20], 'every shard master not flagged failing')
  t.same(n.candidates.map(r => r.port), [11], 'healthy replicas on the bus')
  t.same([...n.receiving.keys()].sort(), ['127.0.0.1:10', '127.0.0.1:11', '127.0.0.1:20', '127.0.0.1:21'])
})
