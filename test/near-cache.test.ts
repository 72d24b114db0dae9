/**
 * The near-cache against the real topology: two gateways (A writes, in-process; B reads, its own
 * process), staleness measured over 1,000 PUT-then-GET trials, bypasses, TTL keys, the memory
 * bound, the env switch, and the flushes that keep it correct: invalidation connection killed,
 * data connection killed, replica frozen (heartbeat), failover (last: it changes the topology).
 */
import type { Redis } from 'ioredis'
import t from 'tap'
import { startInProcess, startProcess } from './helpers/gateway.js'
import { KvClient, pollUntil, type Answer } from './helpers/kv-client.js'
import { topologyFor, type NodeProc } from './helpers/topology.js'

const topo = await topologyFor(t)
const A = new KvClient((await startInProcess(t, topo)).url)
const B = new KvClient((await startProcess(t, topo)).url)
const P = `nc:${process.pid}:`

interface CacheView { enabled: boolean; activeReplicas: string[]; entries: number; bytes: number; maxBytes: number; hits: number; evictions: number; flushes: Record<string, number> }
const cacheOf = async (c: KvClient): Promise<CacheView> => ((await c.topology()) as unknown as { nearCache: CacheView }).nearCache

/** Waits until `c` fills its cache from every replica (invalidation connections subscribed, tracking on). */
async function cacheActive (c: KvClient, replicas = 2): Promise<boolean> {
  return (await pollUntil(10_000, 50, async () => (await cacheOf(c)).activeReplicas.length >= replicas ? true : undefined)).value === true
}

/** GETs through `c` until the answer comes from the cache (bounded); the last answer. */
async function warm (c: KvClient, key: string): Promise<Answer> {
  let r: Answer | undefined
  for (let i = 0; i < 20; i++) {
    r = await c.get(key)
    if (r.headers.get('x-cache') === 'hit') return r
  }
  return r!
}

const replicaProcs = async (): Promise<NodeProc[]> => {
  const m = await topo.master()
  return topo.redis.filter(p => p.alive && p.port !== m.port)
}

/** Runs `fn` with a short-lived client to `port`. */
async function withClient<T> (port: number, fn: (c: Redis) => Promise<T>): Promise<T> {
  const c = topo.client(port)
  try { return await fn(c) } finally { await c.quit().catch(() => {}) }
}

/** Writes straight to the master (no gateway, so no gateway-side invalidation), confirmed by `replicas`. */
async function setDirect (key: string, value: string, replicas: number): Promise<void> {
  await withClient((await topo.master()).port, async c => {
    await c.set(key, value)
    const acked = await c.wait(replicas, 2000)
    if (acked < replicas) throw new Error(`SET confirmed by ${acked} of ${replicas} replicas`)
  })
}

/** CLIENT KILL of every connection named `name` on each replica; how many were killed. */
async function killClients (name: string): Promise<number> {
  let n = 0
  for (const r of await replicaProcs()) {
    await withClient(r.port, async c => {
      const list = String(await c.call('CLIENT', 'LIST'))
      for (const line of list.split('\n')) {
        const id = / id=(\d+) /.exec(` ${line}`)?.[1]
        if (id !== undefined && line.includes(` name=${name} `)) n += Number(await c.call('CLIENT', 'KILL', 'ID', id))
      }
    })
  }
  return n
}

t.test('B answers from its cache and sees A\'s writes: staleness over 1,000 PUT-then-GET trials', async t => {
  t.ok(await cacheActive(B), 'B tracks both replicas')
  const key = `${P}hot`
  t.equal((await A.put(key, 'v-init')).status, 201)
  const replicas = await replicaProcs()
  const direct = replicas.map(r => topo.client(r.port))
  t.teardown(async () => { for (const c of direct) await c.quit().catch(() => {}) })

  const TRIALS = 1000
  let coldTrials = 0
  let staleReads = 0
  let staleTrials = 0
  let directStale = 0
  let regressions = 0
  const stalenessMs: number[] = []
  const started = Date.now()
  for (let i = 0; i < TRIALS && Date.now() - started < 90_000; i++) {
    if ((await warm(B, key)).headers.get('x-cache') !== 'hit') coldTrials++
    const value = `v-${i}`
    const put = await A.put(key, value)
    if (put.status !== 200) throw new Error(`PUT answered ${put.status}: ${put.text}`)
    const ackedAt = performance.now()
    // Reference: the replicas themselves, read directly right after the acknowledgement.
    for (const c of direct) if ((await c.get(key)) !== value) directStale++
    let fresh = false
    let firstFreshStart = ackedAt
    let stale = 0
    while (!fresh && performance.now() - ackedAt < 2000) {
      const at = performance.now()
      const r = await B.get(key)
      if (r.text === value) { fresh = true; firstFreshStart = at } else stale++
    }
    if (!fresh) throw new Error(`trial ${i}: B still answered the old value 2 s after the PUT was acknowledged`)
    if ((await B.get(key)).text !== value) regressions++
    staleReads += stale
    if (stale > 0) staleTrials++
    stalenessMs.push(stale > 0 ? firstFreshStart - ackedAt : 0)
  }
  const n = stalenessMs.length
  const max = Math.max(...stalenessMs)
  const sorted = [...stalenessMs].sort((a, b) => a - b)
  t.comment(`near-cache staleness over ${n} trials: ${staleTrials} trials with a stale read (${staleReads} stale reads), ` +
    `max ${max.toFixed(2)} ms, p99 ${sorted[Math.floor(n * 0.99) - 1]!.toFixed(2)} ms; ` +
    `replicas read directly after the same acknowledgements: ${directStale} stale of ${n * direct.length}; ${coldTrials} trials not warm`)
  t.equal(n, TRIALS, `all ${TRIALS} trials ran within the time bound`)
  t.equal(directStale, 0, 'the replicas themselves have every acknowledged write (WAIT)')
  t.equal(regressions, 0, 'once B answered the new value it never answered the old one again')
  t.ok(coldTrials < TRIALS / 10, `the key was served from the cache before nearly every PUT (${coldTrials} cold)`)
  t.ok(max < 250, `max staleness ${max.toFixed(2)} ms is bounded by the invalidation's delivery, far below the 100 ms heartbeat + request time`)
  const c = await cacheOf(B)
  t.ok(c.hits >= TRIALS, `hits counted in /topology (${c.hits})`)
  const metrics = (await B.request('GET', '/metrics')).text
  t.match(metrics, /^skv_near_cache_hits_total [1-9]\d*$/m, 'hits in /metrics')
  t.match(metrics, /^skv_near_cache_invalidations_total [1-9]\d*$/m, 'invalidations in /metrics')
  t.match(metrics, /^skv_near_cache_bytes [1-9]\d*$/m, 'memory in /metrics')
})

t.test('strong and sync-token reads bypass the cache; a missing key is cached and invalidated too', async t => {
  const key = `${P}bypass`
  t.equal((await warm(B, key)).status, 404, 'missing key')
  t.equal((await B.get(key)).headers.get('x-cache'), 'hit', 'a 404 is served from the cache too')
  await setDirect(key, 'created elsewhere', 2)
  const after = await pollUntil(1000, 5, async () => { const r = await B.get(key); return r.status === 200 ? r : undefined })
  t.equal(after.value?.text, 'created elsewhere', 'the creation invalidated the cached 404')
  await warm(B, key)
  const strong = await B.get(key, 'consistency=strong')
  t.equal(strong.headers.get('x-cache'), 'bypass')
  t.equal(strong.headers.get('x-served-by'), 'master')
  const put = await B.put(key, 'mine')
  const token = put.headers.get('x-sync-token')!
  const synced = await B.get(key, `syncToken=${token}`)
  t.equal(synced.headers.get('x-cache'), 'bypass')
  t.equal(synced.text, 'mine')
  t.equal((await B.get(key)).text, 'mine', 'a write through the gateway replaces its own cached value at once')
})

t.test('keys with a TTL are not cached', async t => {
  const key = `${P}ttl`
  t.equal((await A.put(key, 'short-lived', { query: 'ttl=60' })).status, 201)
  for (let i = 0; i < 3; i++) {
    const r = await B.get(key)
    t.equal(r.headers.get('x-cache'), 'miss')
    t.ok(r.headers.get('x-ttl') !== null, 'x-ttl still answered')
  }
})

t.test('a killed invalidation connection flushes the cache: 0 stale reads after it', async t => {
  t.ok(await cacheActive(B))
  const key = `${P}sub-kill`
  let stale = 0
  const before = (await cacheOf(B)).flushes['invalidation-connection'] ?? 0
  for (let i = 0; i < 10; i++) {
    t.ok(await cacheActive(B), `round ${i}: tracking back`)
    await setDirect(key, `old-${i}`, 2)
    if ((await warm(B, key)).text !== `old-${i}`) throw new Error('warm-up read the wrong value')
    t.ok(await killClients('skv-gateway-invalidate') >= 2, `round ${i}: invalidation connections killed`)
    // Without the flush this write's invalidation would be lost and B would serve old-<i> forever.
    await setDirect(key, `new-${i}`, 2)
    if ((await B.get(key)).text !== `new-${i}`) stale++
  }
  t.equal(stale, 0, 'no stale read after a killed invalidation connection')
  t.ok((await cacheOf(B)).flushes['invalidation-connection']! >= before + 10, 'flushes counted by reason')
  t.ok(await cacheActive(B), 'B subscribes again and fills the cache again')
  t.equal((await warm(B, key)).headers.get('x-cache'), 'hit')
})

t.test('a killed data connection flushes the cache (the server forgets what it tracked for it)', async t => {
  const key = `${P}data-kill`
  await setDirect(key, 'old', 2)
  t.equal((await warm(B, key)).headers.get('x-cache'), 'hit')
  const before = (await cacheOf(B)).flushes['data-connection'] ?? 0
  t.ok(await killClients('skv-gateway') > 0)
  await setDirect(key, 'new', 2)
  t.equal((await B.get(key)).text, 'new')
  t.ok((await cacheOf(B)).flushes['data-connection']! > before, 'flush counted')
  t.ok(await cacheActive(B), 'tracking is on again after the reconnect')
})

t.test('a frozen replica (SIGSTOP) misses the heartbeat: the cache is flushed and reads stay fresh', async t => {
  t.ok(await cacheActive(B))
  const key = `${P}frozen`
  await setDirect(key, 'old', 2)
  t.equal((await warm(B, key)).headers.get('x-cache'), 'hit')
  const before = (await cacheOf(B)).flushes.heartbeat ?? 0
  const [frozen] = await replicaProcs()
  await topo.kill(frozen!, 'SIGSTOP')
  try {
    const flushed = await pollUntil(1000, 20, async () => ((await cacheOf(B)).flushes.heartbeat ?? 0) > before ? true : undefined)
    t.ok(flushed.value, `heartbeat flush within ${flushed.ms} ms`)
    t.ok(flushed.ms < 500, 'within a few 100 ms heartbeats')
    await setDirect(key, 'new', 1)
    const r = await B.get(key)
    t.equal(r.text, 'new', 'fresh read while the replica is frozen')
  } finally {
    await topo.kill(frozen!, 'SIGCONT')
  }
  t.ok(await cacheActive(B), 'the replica answers its heartbeat again and fills again')
})

t.test('NEAR_CACHE=false turns it off; NEAR_CACHE_MAX_BYTES bounds it', async t => {
  const off = new KvClient((await startInProcess(t, topo, { NEAR_CACHE: 'false' })).url)
  const key = `${P}switch`
  await A.put(key, 'x')
  for (let i = 0; i < 3; i++) t.equal((await off.get(key)).headers.get('x-cache'), null, 'no x-cache header')
  t.equal((await cacheOf(off)).enabled, false)
  t.notMatch((await off.request('GET', '/metrics')).text, /skv_near_cache_hits_total/)

  const small = new KvClient((await startInProcess(t, topo, { NEAR_CACHE_MAX_BYTES: '4096' })).url)
  t.ok(await cacheActive(small))
  for (let i = 0; i < 60; i++) await A.put(`${P}many-${i}`, 'v'.repeat(100))
  for (let round = 0; round < 2; round++) for (let i = 0; i < 60; i++) await small.get(`${P}many-${i}`)
  const c = await cacheOf(small)
  t.ok(c.bytes <= 4096 && c.maxBytes === 4096, `bytes ${c.bytes} within 4096`)
  t.ok(c.evictions > 0, `evictions ${c.evictions}`)
  t.match((await small.request('GET', '/metrics')).text, /^skv_near_cache_evictions_total [1-9]\d*$/m)
})

t.test('a failover flushes the cache; reads are fresh right after it and the cache fills again', async t => {
  const key = `${P}failover`
  t.equal((await A.put(key, 'before')).status, 201)
  t.equal((await warm(B, key)).headers.get('x-cache'), 'hit')
  const before = (await cacheOf(B)).flushes.topology ?? 0
  const fo = await topo.failover()
  const seen = await pollUntil(5000, 20, async () => {
    const v = await B.topology()
    return v.master?.port === fo.to ? v : undefined
  })
  t.ok(seen.value, 'B follows the new master')
  t.ok(((await cacheOf(B)).flushes.topology ?? 0) > before, 'the master change flushed the cache')
  const put = await pollUntil(10_000, 50, async () => { const r = await A.put(key, 'after'); return r.status === 200 ? r : undefined })
  t.ok(put.value, 'A writes on the new master')
  t.equal((await B.get(key)).text, 'after', 'B reads the write made after the failover')
  const hit = await pollUntil(20_000, 100, async () => { const r = await B.get(key); return r.headers.get('x-cache') === 'hit' && r.text === 'after' ? r : undefined })
  t.ok(hit.value, `the cache serves again after the failover (${hit.ms} ms)`)
})
