// Subscription streams in Redis Cluster mode, on a real cluster of 3 masters + 3 replicas: one
// subscriber connection on a replica receives every channel (PUBLISH crosses the cluster bus), a
// message published through the gateway and one published straight to a master of ANOTHER shard
// both arrive; the same rights and reserved-channel checks as in Sentinel mode; kill -9 of the
// subscriber's node: one `gap` event, then new messages again, still one subscriber connection.
import { Redis as Upstash } from '@upstash/redis'
import t from 'tap'
import { clusterFor, startClusterGateway, type Cluster } from './helpers/cluster.js'
import { pollUntil } from './helpers/kv-client.js'
import { dropSilentConnections, subscriberConnections as connectionsOf } from './helpers/pubsub.js'
import { openSse, sse, type SseClient } from './helpers/sse.js'
import type { Topology } from './helpers/topology.js'

const TOKEN = 'pubsub-cluster-token-1'
const PREFIXED = 'pubsub-cluster-prefixed-1'
const NO_P = 'pubsub-cluster-rw-only-1'

/** `name=skv-gateway-pubsub` connections per live node of the cluster, e.g. { 7001: 1 } (the Sentinel helper, on the cluster's nodes). */
async function subscriberConnections (cluster: Cluster): Promise<Record<number, number>> {
  const nodes: Pick<Topology, 'redis' | 'client'> = { redis: cluster.nodes, client: port => cluster.client(port) }
  return await connectionsOf(nodes as Topology)
}

/** Publishes straight to the node at `port` (not through the gateway). */
async function publishOn (cluster: Cluster, port: number, channel: string, message: string): Promise<void> {
  const c = cluster.client(port)
  try { await c.publish(channel, message) } finally { c.disconnect() }
}

t.test('pub/sub streams in Cluster mode: any shard\'s messages, same checks, a gap after the subscriber\'s node dies', async (t) => {
  const cluster = await clusterFor(t, { nodeTimeoutMs: 1000 })
  const { url, app } = await startClusterGateway(t, cluster, { AUTH_TOKENS: `${TOKEN}:rwp,${PREFIXED}:p:app:,${NO_P}:rw` })
  dropSilentConnections(t, app.server)
  await pollUntil(20_000, 100, async () => {
    const shards = app.cluster?.shards ?? []
    return shards.length === 3 && shards.every(s => s.snapshot.masterConfirmed && s.snapshot.replicas.filter(r => r.healthy).length === 1) ? true : undefined
  })
  const redis = new Upstash({ url, token: TOKEN, retry: false })
  const auth = { authorization: `Bearer ${TOKEN}` }

  await t.test('the same rights and reserved-channel checks as in Sentinel mode', async (t) => {
    const refused = async (path: string, token: string): Promise<[number, string]> => {
      const r = await openSse(`${url}${path}`, { authorization: `Bearer ${token}` })
      if ('waitFor' in r) { r.close(); return [200, ''] }
      return [r.status, r.text]
    }
    const [noP, noPText] = await refused('/subscribe/cl', NO_P)
    t.equal(noP, 403, `a token without p: 403 ${noPText}`)
    const [outside] = await refused('/subscribe/other:cl', PREFIXED)
    t.equal(outside, 403, 'a prefixed token outside its prefix: 403')
    const [reserved, reservedText] = await refused('/subscribe/__redis__:invalidate', TOKEN)
    t.equal(reserved, 403, 'a reserved channel: 403')
    t.match(reservedText, /NOPERM/)
    const [pattern] = await refused('/psubscribe/__sentinel__*', TOKEN)
    t.equal(pattern, 403, 'a reserved pattern: 403')
    const inside = await sse(`${url}/subscribe/app:cl`, { authorization: `Bearer ${PREFIXED}` })
    await inside.waitFor(d => d === 'subscribe,app:cl,1')
    inside.close()
    t.pass('a prefixed token inside its prefix: a stream')
  })

  const plain = await sse(`${url}/subscribe/cl`, auth)
  const pattern = await sse(`${url}/psubscribe/*`, auth, 'GET')
  t.teardown(() => { plain.close(); pattern.close() })
  await plain.waitFor(d => d === 'subscribe,cl,1')
  await pattern.waitFor(d => d === 'psubscribe,*,1')

  /** The master of a shard other than the one `port` belongs to. */
  const otherShardMaster = async (port: number): Promise<number> => {
    const view = await cluster.view()
    const me = view.find(n => n.port === port)!
    const myMaster = me.role === 'master' ? me.id : me.masterId
    return view.find(n => n.role === 'master' && !n.failed && n.slots.length > 0 && n.id !== myMaster)!.port
  }
  /** Publishes `m` through the gateway (retrying its 503s while the cluster fails over) and straight to another shard's master; both streams get both. */
  const roundTrip = async (m: string, subscriberPort: number, ms = 15_000): Promise<void> => {
    const deadline = Date.now() + ms
    for (;;) {
      try {
        await redis.publish('cl', `${m}-gw`)
        break
      } catch (err) {
        if (Date.now() > deadline) throw err
        await new Promise(resolve => setTimeout(resolve, 100))
      }
    }
    await publishOn(cluster, await otherShardMaster(subscriberPort), 'cl', `${m}-direct`)
    for (const x of [`${m}-gw`, `${m}-direct`]) {
      await plain.waitFor(d => d === `message,cl,${x}`, Math.max(1000, deadline - Date.now()), `message ${x}`)
      await pattern.waitFor(d => d === `pmessage,*,cl,${x}`, Math.max(1000, deadline - Date.now()), `pmessage ${x}`)
    }
  }
  const gaps = (s: SseClient): string[] => s.data.filter(d => d.startsWith('gap,'))

  const first = await subscriberConnections(cluster)
  t.same(Object.values(first), [1], `one subscriber connection in the whole cluster: ${JSON.stringify(first)}`)
  const node = Number(Object.keys(first)[0])
  const view = await cluster.view()
  t.equal(view.find(n => n.port === node)?.role, 'replica', `on a replica (:${node})`)
  await roundTrip('before', node)
  t.pass('a message published through the gateway and one published on another shard\'s master both arrived')

  // A reserved channel's message never reaches a stream, even a `*` pattern's.
  await publishOn(cluster, await otherShardMaster(node), '__keyspace@0__:x', 'hidden')
  await roundTrip('after-reserved', node)
  t.notOk(pattern.data.some(d => d.includes('hidden')), 'no reserved channel\'s message on the `*` stream')
  t.same(gaps(plain), [], 'no gap event so far')

  await t.test('kill -9 of the subscriber\'s node: one gap event, then new messages', async (t) => {
    const started = Date.now()
    await cluster.kill(cluster.nodes.find(n => n.port === node)!)
    await plain.waitFor(d => d.startsWith('gap,'), 15_000, 'a gap event')
    await pattern.waitFor(d => d.startsWith('gap,'), 5000, 'a gap event')
    const resumedMs = Date.now() - started
    t.match(gaps(plain), [/^gap,(connection-lost|node-switch),\d{4}-\d\d-\d\dT[\d:.]+Z$/], `one gap event, ${resumedMs} ms after the kill: ${gaps(plain).join(' ')}`)
    t.equal(gaps(pattern).length, 1, 'one on the pattern stream too')
    const now = await subscriberConnections(cluster)
    t.same(Object.values(now), [1], `still one subscriber connection, now on :${Object.keys(now)[0]}`)
    const moved = Number(Object.keys(now)[0])
    t.not(moved, node, 'on another node')
    for (const m of ['after-kill-1', 'after-kill-2']) await roundTrip(m, moved)
    const after = plain.data.slice(plain.data.findIndex(d => d.startsWith('gap,')) + 1)
    // Each round trip publishes on two nodes (through the gateway, and on another shard's master): the
    // cluster bus brings those two in either order; round trips are in order (each waits for both).
    const inPairs = [after.slice(0, 2).sort(), after.slice(2).sort()]
    t.same(inPairs, [['message,cl,after-kill-1-direct', 'message,cl,after-kill-1-gw'], ['message,cl,after-kill-2-direct', 'message,cl,after-kill-2-gw']],
      `every message published after the gap event arrived, each round trip's after the previous one (${after.join(' ')})`)
  })
})
