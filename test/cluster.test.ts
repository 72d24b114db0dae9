/**
 * Cluster mode (REDIS_CLUSTER_NODES) on a real Redis Cluster of 3 masters + 3 replicas: the start
 * checks of the configuration, every key on the shard serving its hash slot (checked on the
 * servers), writes confirmed by the shard's replica, reads served by that replica (its own
 * command counters), strong reads by the shard master, /topology and /readyz.
 */
import calculateSlot from 'cluster-key-slot'
import t from 'tap'
import { loadConfig } from '../src/config.js'
import { clusterFor, startClusterGateway, type ClusterNodeView } from './helpers/cluster.js'
import { runServer } from './helpers/gateway.js'
import { commandCalls, KvClient } from './helpers/kv-client.js'

t.test('the configuration names exactly one mode', async t => {
  t.throws(() => loadConfig({ REDIS_SENTINELS: 'a:1,b:2,c:3', REDIS_CLUSTER_NODES: 'a:7000' }), /REDIS_SENTINELS and REDIS_CLUSTER_NODES: set one of them, not both/, 'both: refused')
  t.throws(() => loadConfig({}), /Missing environment variable REDIS_SENTINELS: set REDIS_SENTINELS .* or REDIS_CLUSTER_NODES/, 'neither: refused, naming both')
  t.throws(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_DB: '2' }), /REDIS_DB: Redis Cluster has only database 0/, 'a database other than 0: refused')
  t.throws(() => loadConfig({ REDIS_CLUSTER_NODES: 'nonsense' }), /REDIS_CLUSTER_NODES/, 'a bad seed list names the variable')
  const c = loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7000, 127.0.0.1:7001' })
  t.same(c.clusterNodes, [{ host: '127.0.0.1', port: 7000 }, { host: '127.0.0.1', port: 7001 }], 'the seeds are parsed')
  t.same(c.sentinels, [], 'no sentinels in Cluster mode')
  t.same(c.warnings, [], 'no sentinel-count warning in Cluster mode')
  const r = await runServer({ REDIS_SENTINELS: '127.0.0.1:1', REDIS_CLUSTER_NODES: '127.0.0.1:2', HOST: '127.0.0.1', PORT: '0' }, 10_000)
  t.not(r.code, null, 'the server exits by itself when both are set')
  t.not(r.code, 0, 'with a non-zero code')
  t.match(r.stderr.trim(), /^[^\n]*REDIS_CLUSTER_NODES[^\n]*$/, 'one stderr line naming the variables')
})

const cluster = await clusterFor(t)
// No near-cache here: the reads below are counted on the servers (test/cluster-near-cache.test.ts has it on).
const gw = await startClusterGateway(t, cluster, { NEAR_CACHE: 'false' })
const api = new KvClient(gw.url)
const P = `cl:${process.pid}:`

/** Keys of this run, three per shard (by the cluster's own slot map), plus two sharing a hash tag. */
const view = await cluster.view()
const masters = view.filter(n => n.role === 'master' && n.slots.length > 0)
const replicaOf = (m: ClusterNodeView): ClusterNodeView => view.find(n => n.masterId === m.id)!
const keysByMaster = new Map<number, string[]>(masters.map(m => [m.port, []]))
for (let i = 0; [...keysByMaster.values()].some(k => k.length < 3); i++) {
  const key = `${P}k${i}`
  const port = await cluster.masterOf(calculateSlot(key))
  const list = keysByMaster.get(port)!
  if (list.length < 3) list.push(key)
}

async function onNode<T> (port: number, fn: (c: ReturnType<typeof cluster.client>) => Promise<T>): Promise<T> {
  const c = cluster.client(port)
  try { return await fn(c) } finally { c.disconnect() }
}

t.test('every key is written on the master serving its slot and confirmed by that shard\'s replica', async t => {
  for (const [port, keys] of keysByMaster) {
    for (const key of keys) {
      const r = await api.put(key, `v:${key}`)
      t.equal(r.status, 201, `PUT ${key} (slot ${calculateSlot(key)}, master :${port}) ${r.text}`)
      t.equal((r.json as { replicas: number }).replicas, 1, `${key}: confirmed by the shard's one replica`)
    }
  }
  for (const m of masters) {
    const keys = keysByMaster.get(m.port)!
    t.same(await onNode(m.port, async c => await Promise.all(keys.map(async k => await c.get(k)))), keys.map(k => `v:${k}`), `the keys of :${m.port}'s slots are on it`)
    const replica = replicaOf(m)
    const onReplica = await onNode(replica.port, async c => { await c.call('READONLY'); return await Promise.all(keys.map(async k => await c.get(k))) })
    t.same(onReplica, keys.map(k => `v:${k}`), `and on its replica :${replica.port}`)
    // Another master has none of them: it answers MOVED for the slot.
    const other = masters.find(o => o.port !== m.port)!
    await t.rejects(onNode(other.port, async c => await c.get(keys[0]!)), /MOVED/, `master :${other.port} does not serve ${keys[0]}`)
  }
})

t.test('keys sharing a hash tag land on one shard', async t => {
  const a = `{${P}user}:a`
  const b = `{${P}user}:b`
  t.equal(calculateSlot(a), calculateSlot(b), 'same slot')
  t.equal((await api.put(a, 'A')).status, 201)
  t.equal((await api.put(b, 'B')).status, 201)
  const port = await cluster.masterOf(calculateSlot(a))
  t.same(await onNode(port, async c => await c.mget(a, b)), ['A', 'B'], 'both on the master serving the tag\'s slot')
})

t.test('eventual reads are served by the replica of the key\'s shard, strong reads by its master', async t => {
  for (const m of masters) {
    const keys = keysByMaster.get(m.port)!
    const replica = replicaOf(m)
    const before = await Promise.all(view.map(async n => await onNode(n.port, async c => await commandCalls(c, 'get'))))
    for (let i = 0; i < 9; i++) {
      const key = keys[i % keys.length]!
      const r = await api.get(key)
      t.equal(r.status, 200, `GET ${key}`)
      t.equal(r.text, `v:${key}`, 'the value written')
      t.equal(r.headers.get('x-served-by'), 'replica', 'served by a replica')
    }
    const after = await Promise.all(view.map(async n => await onNode(n.port, async c => await commandCalls(c, 'get'))))
    const grew = view.map((n, i) => [n.port, after[i]! - before[i]!] as const).filter(([, d]) => d > 0)
    t.same(grew, [[replica.port, 9]], `all 9 GETs of :${m.port}'s keys ran on its replica :${replica.port}`)
    const strong = await api.get(keys[0]!, 'consistency=strong')
    t.equal(strong.status, 200)
    t.equal(strong.headers.get('x-served-by'), 'master', 'a strong read is served by the shard master')
  }
  const missing = await api.get(`${P}never-written`)
  t.equal(missing.status, 404, 'a missing key is 404 as in Sentinel mode')
})

t.test('DELETE and conditional PUT work per shard', async t => {
  const key = keysByMaster.get(masters[0]!.port)![0]!
  t.equal((await api.put(key, 'again', { headers: { 'if-none-match': '*' } })).status, 412, 'create-only on an existing key: 412')
  t.equal((await api.del(key)).status, 204, 'DELETE: 204')
  t.equal(await onNode(masters[0]!.port, async c => await c.exists(key)), 0, 'gone from the master')
  t.equal((await api.del(key)).status, 404, 'DELETE again: 404')
})

t.test('/readyz and /topology in Cluster mode', async t => {
  const ready = await fetch(`${gw.url}/readyz`)
  t.equal(ready.status, 200, '/readyz: every shard has a writable master')
  t.equal(gw.app.cluster?.shards.length, 3, 'three shards')
  const shard = gw.app.cluster!.shards.map(s => s.snapshot)
  t.same(shard.map(s => s.master?.port).sort(), masters.map(m => m.port).sort(), 'each shard\'s master is the cluster\'s')
  t.ok(shard.every(s => s.masterConfirmed && s.requiredReplicas === 1 && s.replicas.length === 1 && s.replicas[0]!.healthy), 'each confirmed, one readable replica, WAIT 1 pinned')
})

t.test('/topology lists the shards: slot ranges, master, replicas, WAIT count', async t => {
  const r = await api.request('GET', '/topology')
  t.equal(r.status, 200, r.text.slice(0, 200))
  const shards = (r.json as { shards?: Array<{ slots: string[]; master: { port: number; confirmed: boolean }; replicas: Array<{ port: number; healthy: boolean; lagBytes: number | null }>; requiredReplicas: number }> }).shards ?? []
  t.equal(shards.length, 3, 'three shards')
  for (const m of masters) {
    const s = shards.find(x => x.master.port === m.port)
    t.ok(s !== undefined, `shard of :${m.port} listed`)
    t.same(s?.slots, m.slots, 'with the slot ranges the cluster gives it')
    t.ok(s?.master.confirmed, 'master confirmed by its own role')
    t.same(s?.replicas.map(x => x.port), [replicaOf(m).port], 'its replica')
    t.ok(s?.replicas.every(x => x.healthy && x.lagBytes !== null), 'healthy, lag known')
    t.equal(s?.requiredReplicas, 1, 'WAIT 1 pinned for the shard')
  }
})

t.test('/kv/_batch runs each operation on its own shard', async t => {
  const keys = masters.map(m => keysByMaster.get(m.port)![1]!)
  const r = await api.request('POST', '/kv/_batch', {
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ops: [...keys.map(key => ({ op: 'put', key, value: `b:${key}` })), ...keys.map(key => ({ op: 'get', key }))] })
  })
  t.equal(r.status, 200, r.text.slice(0, 200))
  const results = (r.json as { results: Array<{ status: number; value?: string }> }).results
  t.same(results.map(x => x.status), [200, 200, 200, 200, 200, 200], 'three replaced, three read')
  t.same(results.slice(3).map(x => x.value), keys.map(k => `b:${k}`), 'each read answers its shard\'s value')
  for (const [i, m] of masters.entries()) {
    t.equal(await onNode(m.port, async c => await c.get(keys[i]!)), `b:${keys[i]!}`, `${keys[i]!} written on :${m.port}`)
  }
})

t.test('the command endpoint: each command on its slot\'s shard, CROSSSLOT like Redis, pipelines split per shard', async t => {
  const cmd = async (path: string, body: unknown): Promise<{ status: number; json: unknown }> => {
    const r = await api.request('POST', path, { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    return { status: r.status, json: r.json }
  }
  const keys = masters.map(m => keysByMaster.get(m.port)![2]!)
  for (const [i, key] of keys.entries()) {
    t.same(await cmd('/', ['SET', key, `u:${i}`]), { status: 200, json: { result: 'OK' } }, `SET ${key}`)
    t.equal(await onNode(masters[i]!.port, async c => await c.get(key)), `u:${i}`, `on :${masters[i]!.port}, the master of its slot`)
    t.same(await cmd('/', ['GET', key]), { status: 200, json: { result: `u:${i}` } }, `GET ${key}`)
  }
  const cross = await cmd('/', ['MSET', keys[0], 'x', keys[1], 'y'])
  t.same(cross, { status: 400, json: { error: "CROSSSLOT Keys in request don't hash to the same slot" } }, 'MSET across slots: 400 CROSSSLOT, as Redis answers')
  t.equal(await onNode(masters[0]!.port, async c => await c.get(keys[0]!)), 'u:0', 'nothing written')
  const tag = `{${P}t}`
  t.same(await cmd('/', ['MSET', `${tag}a`, '1', `${tag}b`, '2']), { status: 200, json: { result: 'OK' } }, 'MSET within one hash tag works')
  t.same(await cmd('/', ['MGET', `${tag}a`, `${tag}b`]), { status: 200, json: { result: ['1', '2'] } }, 'MGET within one hash tag')

  const pipe = await cmd('/pipeline', [['INCR', keys[0]! + ':n'], ['GET', keys[1]], ['MGET', keys[0], keys[2]], ['SET', keys[2], 'p'], ['PING']])
  t.equal(pipe.status, 200, 'a pipeline over three shards: 200')
  t.same(pipe.json, [{ result: 1 }, { result: 'u:1' }, { error: "CROSSSLOT Keys in request don't hash to the same slot" }, { result: 'OK' }, { result: 'PONG' }],
    'each command answers on its own shard; the cross-slot one answers CROSSSLOT')
  t.equal(await onNode(masters[2]!.port, async c => await c.get(keys[2]!)), 'p', 'the pipeline\'s SET is on its shard\'s master')

  t.same(await cmd('/multi-exec', [['SET', keys[0], 'm'], ['SET', keys[1], 'm']]), { status: 400, json: { error: "CROSSSLOT Keys in request don't hash to the same slot" } },
    'a transaction across slots: 400 CROSSSLOT, nothing run')
  t.equal(await onNode(masters[0]!.port, async c => await c.get(keys[0]!)), 'u:0', 'nothing written')
  t.same(await cmd('/multi-exec', [['INCR', `${tag}c`], ['INCR', `${tag}c`]]), { status: 200, json: [{ result: 1 }, { result: 2 }] }, 'a transaction within one hash tag runs')
  const scan = await cmd('/', ['SCAN', '0'])
  t.equal(scan.status, 400, 'SCAN (no key: it would see one shard) is refused')
  t.match(scan.json, { error: /names no key/ }, 'saying why')
})

t.test('/metrics has per-shard series, one per shard', async t => {
  const text = (await api.request('GET', '/metrics')).text
  const confirmed = text.split('\n').filter(l => l.startsWith('skv_shard_master_confirmed{'))
  t.equal(confirmed.length, 3, `three shards: ${confirmed.join(' | ')}`)
  t.ok(confirmed.every(l => l.endsWith(' 1')), 'every shard master confirmed')
  const slots = text.split('\n').filter(l => l.startsWith('skv_shard_slots{')).map(l => Number(l.split(' ').pop()))
  t.equal(slots.reduce((a, b) => a + b, 0), 16384, 'the shards serve the 16384 slots between them')
})

t.test('the rate limiter counts on the cluster (ioredis Cluster client, counter on its slot\'s master)', async t => {
  const limited = await startClusterGateway(t, cluster, { NEAR_CACHE: 'false', RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '60000' })
  const client = new KvClient(limited.url)
  const statuses: number[] = []
  // The counters' client connects in the background: until it is ready the limiter fails open.
  for (let i = 0; i < 50 && !statuses.includes(429); i++) {
    statuses.push((await client.get(`${P}limited`)).status)
    if (!statuses.includes(429)) await new Promise(resolve => setTimeout(resolve, 100))
  }
  t.ok(statuses.includes(429), `a 429 once the window's 3 requests are used (${statuses.join(' ')})`)
  const counters: string[] = []
  for (const m of masters) counters.push(...await onNode(m.port, async c => await c.keys('__skv:*')))
  t.ok(counters.length > 0, `the counter is a reserved key on a master of the cluster (${counters.join(', ')})`)
})
