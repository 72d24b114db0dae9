/**
 * The near-cache in Cluster mode (CLIENT TRACKING on the replicas of every shard): gateway B reads
 * through its cache while gateway A writes, on keys of every shard; the cache stays correct across
 * a `CLUSTER FAILOVER` of a shard and across the migration of a cached key's slot to another shard.
 */
import calculateSlot from 'cluster-key-slot'
import t from 'tap'
import { clusterFor, startClusterGateway } from './helpers/cluster.js'
import { KvClient, pollUntil, type Answer } from './helpers/kv-client.js'
import { waitUntil } from './helpers/topology-procs.js'

const cluster = await clusterFor(t)
const A = new KvClient((await startClusterGateway(t, cluster, { NEAR_CACHE: 'false' })).url)
const B = new KvClient((await startClusterGateway(t, cluster, { NEAR_CACHE: 'true' })).url)
const P = `clnc:${process.pid}:`

interface CacheView { activeReplicas: string[]; hits: number; flushes: Record<string, number> }
const cacheOf = async (): Promise<CacheView> => ((await B.topology()) as unknown as { nearCache: CacheView }).nearCache

/** GETs through B until the answer comes from the cache (bounded); the last answer. */
async function warm (key: string): Promise<Answer> {
  let r: Answer | undefined
  for (let i = 0; i < 20; i++) {
    r = await B.get(key)
    if (r.headers.get('x-cache') === 'hit') return r
  }
  return r!
}

/** PUT through A, then GETs through B until fresh (bounded 2 s): ms B answered the old value. */
async function staleness (key: string, value: string): Promise<number> {
  const put = await A.put(key, value)
  if (put.status !== 200 && put.status !== 201) throw new Error(`PUT ${key} answered ${put.status}: ${put.text}`)
  const acked = performance.now()
  let first = true
  for (;;) {
    const r = await B.get(key)
    if (r.text === value) return first ? 0 : performance.now() - acked
    first = false
    if (performance.now() - acked > 2000) throw new Error(`B still answers the old value of ${key} 2 s after the PUT was acknowledged`)
  }
}

const view = await cluster.view()
const masters = view.filter(n => n.role === 'master' && n.slots.length > 0)
t.test('B serves every shard\'s keys from its cache and sees A\'s writes', async t => {
  const byShard = new Map<number, string>()
  for (let i = 0; byShard.size < masters.length && i < 1000; i++) {
    const key = `${P}s${i}`
    const port = await cluster.masterOf(calculateSlot(key))
    if (!byShard.has(port)) byShard.set(port, key)
  }
  const active = await pollUntil(10_000, 50, async () => (await cacheOf()).activeReplicas.length >= 3 ? true : undefined)
  t.ok(active.value, 'B tracks the replica of every shard')
  let worst = 0
  let cold = 0
  for (const [port, key] of byShard) {
    t.equal((await A.put(key, 'v-init')).status, 201)
    for (let i = 0; i < 40; i++) {
      if ((await warm(key)).headers.get('x-cache') !== 'hit') cold++
      worst = Math.max(worst, await staleness(key, `v-${i}`))
    }
    t.comment(`shard of :${port}: key ${key}`)
  }
  t.comment(`120 PUT-then-GET trials over 3 shards: worst staleness ${worst.toFixed(1)} ms, ${cold} trials not warm`)
  t.ok(worst < 250, `staleness bounded by the invalidation's delivery (${worst.toFixed(1)} ms)`)
  t.ok(cold < 12, `the keys were served from the cache before nearly every PUT (${cold} cold)`)
})

t.test('a CLUSTER FAILOVER flushes the cache; reads are fresh right after it', async t => {
  const m = masters[0]!
  const replica = view.find(n => n.masterId === m.id)!
  let key = ''
  for (let i = 0; key === '' && i < 1000; i++) if (await cluster.masterOf(calculateSlot(`${P}f${i}`)) === m.port) key = `${P}f${i}`
  t.equal((await A.put(key, 'before')).status, 201)
  t.equal((await warm(key)).headers.get('x-cache'), 'hit', 'cached before the failover')
  const before = (await cacheOf()).flushes.topology ?? 0
  const c = cluster.client(replica.port)
  try { await c.call('CLUSTER', 'FAILOVER') } finally { c.disconnect() }
  await waitUntil(`:${replica.port} to serve the shard`, 10_000, async () => await cluster.masterOf(calculateSlot(key)) === replica.port ? true : 'not yet')
  const flushed = await pollUntil(5000, 20, async () => ((await cacheOf()).flushes.topology ?? 0) > before ? true : undefined)
  t.ok(flushed.value, `the failover flushed B's cache (${flushed.ms} ms)`)
  const put = await pollUntil(10_000, 50, async () => { const r = await A.put(key, 'after'); return r.status === 200 ? r : undefined })
  t.ok(put.value, 'A writes on the new master')
  t.equal((await B.get(key)).text, 'after', 'B reads the write made after the failover at once')
  const hit = await pollUntil(10_000, 50, async () => { const r = await B.get(key); return r.headers.get('x-cache') === 'hit' && r.text === 'after' ? r : undefined })
  t.ok(hit.value, `the cache serves again after the failover (${hit.ms} ms)`)
})

t.test('a cached key whose slot migrates to another shard is never read stale', async t => {
  const key = `${P}migrating`
  const slot = calculateSlot(key)
  t.equal((await A.put(key, 'on-old-shard')).status, 201)
  t.equal((await warm(key)).headers.get('x-cache'), 'hit', 'cached from the old shard\'s replica')
  const from = await cluster.masterOf(slot)
  // Masters as they are now (the previous test failed one shard over).
  const to = (await cluster.view()).find(n => n.role === 'master' && n.slots.length > 0 && !n.failed && n.port !== from)!.port
  const moved = await cluster.migrateSlot(slot, to)
  t.equal(moved, 1, 'the key moved with its slot')
  const put = await pollUntil(10_000, 50, async () => { const r = await A.put(key, 'on-new-shard'); return r.status === 200 ? r : undefined })
  t.ok(put.value, 'A writes the key on its new shard')
  t.equal(await cluster.masterOf(slot), to, 'the slot is served by the new shard')
  t.equal((await B.get(key)).text, 'on-new-shard', 'B\'s first read after the write answers the new value (the migration\'s DEL invalidated the old entry)')
  const hit = await pollUntil(10_000, 50, async () => { const r = await B.get(key); return r.headers.get('x-cache') === 'hit' ? r : undefined })
  t.equal(hit.value?.text, 'on-new-shard', 'and the cache fills again from the new shard\'s replica')
})
