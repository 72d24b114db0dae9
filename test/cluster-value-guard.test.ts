/**
 * Cluster mode: the command endpoint's value-size guard (KV_MAX_VALUE_BYTES) asks the node serving
 * the key. APPEND reads the key's current STRLEN first: on the master of the key's shard (any other
 * master answers MOVED), following ASK while its slot migrates and MOVED once it moved before the
 * gateway's view caught up. On keys of each of the 3 shards: small APPEND / SETRANGE served, growing
 * ones refused with 400, and the values on the servers checked afterwards (none grew past the limit).
 */
import calculateSlot from 'cluster-key-slot'
import t from 'tap'
import { clusterFor, startClusterGateway, type ClusterNodeView } from './helpers/cluster.js'
import { KvClient } from './helpers/kv-client.js'

const MAX = 64
const cluster = await clusterFor(t)
// A slow periodic refresh: the gateway's slot map stays stale after a migration ends (the MOVED case).
const gw = await startClusterGateway(t, cluster, { NEAR_CACHE: 'false', KV_MAX_VALUE_BYTES: String(MAX), REDIS_REFRESH_INTERVAL_MS: '60000' })
const api = new KvClient(gw.url)
const P = `clvg:${process.pid}:`

const view = await cluster.view()
const masters = view.filter(n => n.role === 'master' && n.slots.length > 0)
const replicaOf = (m: ClusterNodeView): ClusterNodeView => view.find(n => n.masterId === m.id)!

/** One hash tag per master, by the cluster's own slot map: its keys (`${tag}:v`, `${tag}:new`...) all live there. */
const tagOf = new Map<number, string>()
for (let i = 0; tagOf.size < masters.length && i < 10_000; i++) {
  const tag = `{${P}k${i}}`
  const port = await cluster.masterOf(calculateSlot(tag))
  if (!tagOf.has(port)) tagOf.set(port, tag)
}
const keyOf = (m: ClusterNodeView): string => `${tagOf.get(m.port)!}:v`

async function onNode<T> (port: number, fn: (c: ReturnType<typeof cluster.client>) => Promise<T>): Promise<T> {
  const c = cluster.client(port)
  try { return await fn(c) } finally { c.disconnect() }
}

const cmd = async (path: string, body: unknown): Promise<{ status: number; json: unknown }> => {
  const r = await api.request('POST', path, { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: r.status, json: r.json }
}

const TOO_LARGE = /^ERR (APPEND|SETRANGE at offset \d+) would make a value larger than KV_MAX_VALUE_BYTES \(64 bytes\)$/

t.test('APPEND and SETRANGE on a key of each shard: served within the limit, 400 past it', async t => {
  t.equal(masters.length, 3, '3 masters serve slots')
  t.equal(tagOf.size, 3, 'a key on each of them')
  for (const m of masters) {
    const key = keyOf(m)
    const what = `${key} (slot ${calculateSlot(key)}, master :${m.port})`
    t.same(await cmd('/', ['SET', key, 'a'.repeat(50)]), { status: 200, json: { result: 'OK' } }, `SET ${what}`)
    t.same(await cmd('/', ['APPEND', key, 'b'.repeat(10)]), { status: 200, json: { result: 60 } }, `APPEND to 60 bytes: ${what}`)
    const grow = await cmd('/', ['APPEND', key, 'c'.repeat(5)])
    t.equal(grow.status, 400, `APPEND to 65 bytes: 400 ${JSON.stringify(grow.json)}`)
    t.match(grow.json, { error: TOO_LARGE }, 'saying why')
    t.same(await cmd('/', ['SETRANGE', key, '60', 'dddd']), { status: 200, json: { result: 64 } }, `SETRANGE to 64 bytes: ${what}`)
    const far = await cmd('/', ['SETRANGE', key, '62', 'eeee'])
    t.equal(far.status, 400, `SETRANGE to 66 bytes: 400 ${JSON.stringify(far.json)}`)
    t.match(far.json, { error: TOO_LARGE }, 'saying why')
    t.same(await cmd('/', ['APPEND', key, 'f']), { status: 400, json: { error: 'ERR APPEND would make a value larger than KV_MAX_VALUE_BYTES (64 bytes)' } }, 'one more byte: 400')
    // A key that does not exist yet: its length is 0 on its shard's master.
    const fresh = `${tagOf.get(m.port)!}:new`
    const first = await cmd('/', ['APPEND', fresh, 'g'.repeat(MAX)])
    t.same(first, { status: 200, json: { result: MAX } }, `APPEND of ${MAX} bytes to a new key ${fresh}`)
    t.equal((await cmd('/', ['APPEND', fresh, 'h'])).status, 400, 'then one more byte: 400')
  }
  // In a pipeline across the shards each command answers its own result or refusal.
  const pipe = await cmd('/pipeline', [...masters.map(m => ['APPEND', keyOf(m), 'x']), ['APPEND', `${tagOf.get(masters[1]!.port)!}:p`, 'y'.repeat(3)]])
  t.equal(pipe.status, 200, 'a pipeline over three shards: 200')
  t.match(pipe.json, [{ error: TOO_LARGE }, { error: TOO_LARGE }, { error: TOO_LARGE }, { result: 3 }], 'the full keys refused, the new one served')
  for (const m of masters) {
    const key = keyOf(m)
    const fresh = `${tagOf.get(m.port)!}:new`
    const want = 'a'.repeat(50) + 'b'.repeat(10) + 'dddd'
    t.equal(await onNode(m.port, async c => await c.get(key)), want, `${key} on its master :${m.port}: 64 bytes, nothing appended past the limit`)
    t.equal(await onNode(m.port, async c => await c.get(fresh)), 'g'.repeat(MAX), `${fresh} on :${m.port}: ${MAX} bytes`)
    const replica = replicaOf(m)
    const lengths = await onNode(replica.port, async c => { await c.call('READONLY'); return [await c.strlen(key), await c.strlen(fresh)] })
    t.same(lengths, [MAX, MAX], `and on its replica :${replica.port}`)
  }
})

t.test('a slot migrating (ASK) and then moved before the gateway\'s view caught up (MOVED): the guard asks the key\'s new owner', async t => {
  const topology = gw.app.cluster!
  const key = `{${P}mig}:v`
  const slot = calculateSlot(key)
  t.same(await cmd('/', ['SET', key, 'a'.repeat(40)]), { status: 200, json: { result: 'OK' } }, 'SET 40 bytes')
  const fromPort = await cluster.masterOf(slot)
  const from = view.find(n => n.port === fromPort)!
  const to = masters.find(n => n.port !== fromPort)!
  await onNode(to.port, async c => await c.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id))
  await onNode(fromPort, async c => {
    await c.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', to.id)
    await c.call('MIGRATE', '127.0.0.1', to.port, '', 0, 5000, 'KEYS', key)
  })
  await t.rejects(onNode(fromPort, async c => await c.strlen(key)), /^ASK /, 'the old owner answers ASK for the key')
  t.same(await cmd('/', ['APPEND', key, 'b'.repeat(20)]), { status: 200, json: { result: 60 } }, 'APPEND to 60 bytes while the slot migrates')
  const grow = await cmd('/', ['APPEND', key, 'c'.repeat(5)])
  t.equal(grow.status, 400, `APPEND to 65 bytes while the slot migrates: 400 ${JSON.stringify(grow.json)}`)

  // The migration ends; the gateway's view still names the old owner (a refresh the ASK asked for
  // is over before, and the periodic one is a minute away).
  await topology.refresh()
  for (const m of masters) await onNode(m.port, async c => await c.call('CLUSTER', 'SETSLOT', slot, 'NODE', to.id))
  await t.rejects(onNode(fromPort, async c => await c.strlen(key)), /^MOVED /, 'the old owner answers MOVED now')
  t.equal(topology.shardForSlot(slot).snapshot.master?.port, fromPort, 'the gateway\'s view still names the old owner')
  const moved = await cmd('/', ['APPEND', key, 'c'.repeat(5)])
  t.equal(moved.status, 400, `APPEND to 65 bytes after the slot moved: 400 ${JSON.stringify(moved.json)}`)
  t.match(moved.json, { error: TOO_LARGE }, 'saying why')
  t.equal(await onNode(to.port, async c => await c.get(key)), 'a'.repeat(40) + 'b'.repeat(20), `the value on its new owner :${to.port}: 60 bytes, nothing appended past the limit`)
})
