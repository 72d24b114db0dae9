/**
 * Cluster mode follows ASK: a hash slot is held half-migrated (CLUSTER SETSLOT IMPORTING/MIGRATING,
 * some of its keys MIGRATEd, the rest not), and while it stays so, requests on that slot answer at
 * once instead of waiting for the migration: a strong GET of a migrated key, a PUT and a DELETE, a
 * /kv/_batch write, and the Upstash endpoint (single command, pipeline, transaction). Writes land on
 * the importing node and are confirmed by ITS replica (checked on the servers); after the migration
 * ends every acknowledged key is on the slot's new owner.
 */
import calculateSlot from 'cluster-key-slot'
import t from 'tap'
import { askingGet, clusterFor, onNode, startClusterGateway } from './helpers/cluster.js'
import { KvClient, kvPath } from './helpers/kv-client.js'

const BUDGET_MS = 5000
/** Far below the retry budget: an answer this fast did not wait for the migration. */
const AT_ONCE_MS = 1000
const cluster = await clusterFor(t)
const gw = await startClusterGateway(t, cluster, { REQUEST_RETRY_BUDGET_MS: String(BUDGET_MS) })
const api = new KvClient(gw.url)
const TAG = `{clask:${process.pid}}`
const slot = calculateSlot(TAG)

/** A request and how long it took. */
async function timed<T> (fn: () => Promise<T>): Promise<{ r: T; ms: number }> {
  const start = Date.now()
  const r = await fn()
  return { r, ms: Date.now() - start }
}

const cmd = async (path: string, body: unknown): Promise<{ status: number; json: unknown }> => {
  const r = await api.request('POST', path, { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: r.status, json: r.json }
}

t.test('requests on a slot held mid-migration follow ASK at once; writes confirmed by the importing shard', async t => {
  const old = Array.from({ length: 8 }, (_, i) => `${TAG}:old:${i}`)
  for (const k of old) t.equal((await api.put(k, k)).status, 201, `seed ${k}`)
  const view = await cluster.view()
  const fromPort = await cluster.masterOf(slot)
  const to = view.find(n => n.role === 'master' && n.slots.length > 0 && n.port !== fromPort)!
  const toReplica = view.find(n => n.masterId === to.id)!
  // Half-migrated, and held so: keys 0-3 on the importing node, 4-7 still on the old owner.
  await cluster.holdMigration(slot, to.port, old.slice(0, 4))
  // Read at once, before the gateway can know: the old owner's replica no longer has the key.
  const early = await api.request('GET', kvPath(old[0]!))
  t.comment(`eventual GET of a migrated key before the gateway saw the migration: ${early.status} (x-cache ${String(early.headers.get('x-cache'))})`)
  await t.rejects(onNode(cluster, fromPort, async c => await c.get(old[0]!)), /^ASK /, 'the old owner answers ASK for a migrated key')

  const fast = (what: string, ms: number): void => { t.ok(ms < AT_ONCE_MS, `${what}: ${ms} ms < ${AT_ONCE_MS} ms (the slot stays migrating)`) }
  // The old owner's replica no longer has the migrated keys (MIGRATE deleted them there): once the
  // gateway knows the slot migrates (CLUSTER NODES, within a refresh), its reads go to the master.
  const topology = gw.app.cluster!
  const seenAt = Date.now()
  while (!topology.migrating(slot) && Date.now() - seenAt < 3000) await new Promise(resolve => setTimeout(resolve, 50))
  t.ok(topology.migrating(slot), `the gateway sees the slot migrating (${Date.now() - seenAt} ms)`)
  const eventual = await timed(async () => await api.request('GET', kvPath(old[0]!)))
  t.equal(eventual.r.status, 200, `eventual GET of a migrated key: ${eventual.r.text}`)
  t.equal(eventual.r.text, old[0], 'its value, from the importing master')
  t.not(eventual.r.headers.get('x-cache'), 'hit', 'not a near-cache answer filled before the migration was seen (flushed then)')
  fast('eventual GET of a migrated key', eventual.ms)
  const upGet = await timed(async () => await cmd('/', ['GET', old[3]]))
  t.same(upGet.r, { status: 200, json: { result: old[3] } }, 'Upstash GET of a migrated key')
  fast('Upstash GET', upGet.ms)

  // /kv reads: the migrated key from the importing master, a key not migrated yet from the old owner.
  const got = await timed(async () => await api.request('GET', kvPath(old[1]!, 'consistency=strong')))
  t.equal(got.r.status, 200, `strong GET of a migrated key: ${got.r.text}`)
  t.equal(got.r.text, old[1], 'its value')
  fast('strong GET of a migrated key', got.ms)
  const stay = await api.request('GET', kvPath(old[6]!, 'consistency=strong'))
  t.equal(stay.text, old[6], 'a key not migrated yet is read on the old owner')

  // /kv writes of the slot: a new key, a migrated key replaced, a migrated key deleted.
  const fresh = `${TAG}:new:0`
  const put = await timed(async () => await api.put(fresh, fresh))
  t.equal(put.r.status, 201, `PUT of a new key: ${put.r.text}`)
  t.equal((put.r.json as { replicas: number }).replicas, 1, 'confirmed by one replica (the importing shard\'s)')
  fast('PUT of a new key', put.ms)
  const repl = await timed(async () => await api.put(old[2]!, 'replaced'))
  t.equal(repl.r.status, 200, `PUT replacing a migrated key: ${repl.r.text}`)
  fast('PUT replacing a migrated key', repl.ms)
  const del = await timed(async () => await api.request('DELETE', kvPath(old[3]!)))
  t.ok(del.r.status === 200 || del.r.status === 204, `DELETE of a migrated key: ${del.r.status} ${del.r.text}`)
  fast('DELETE of a migrated key', del.ms)
  const batch = await timed(async () => await api.request('POST', '/kv/_batch', {
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ops: [{ op: 'put', key: `${TAG}:new:b`, value: `${TAG}:new:b` }, { op: 'put', key: old[5], value: old[5] }] })
  }))
  t.same((batch.r.json as { results?: Array<{ status: number }> }).results?.map(x => x.status), [201, 200], `batch: a new key and a key not migrated yet ${batch.r.text.slice(0, 200)}`)
  fast('/kv/_batch', batch.ms)

  // The Upstash endpoint: one command, a pipeline, a transaction, a read-only transaction.
  const single = await timed(async () => await cmd('/', ['SET', `${TAG}:u:1`, 'one']))
  t.same(single.r, { status: 200, json: { result: 'OK' } }, 'Upstash SET of a new key')
  fast('Upstash SET', single.ms)
  const pipe = await timed(async () => await cmd('/pipeline', [['SET', `${TAG}:u:2`, 'two'], ['GET', old[6]], ['INCR', `${TAG}:u:n`]]))
  t.same(pipe.r, { status: 200, json: [{ result: 'OK' }, { result: old[6] }, { result: 1 }] }, 'a pipeline: new keys via ASK, a key not migrated on the old owner')
  fast('Upstash pipeline', pipe.ms)
  const multi = await timed(async () => await cmd('/multi-exec', [['SET', `${TAG}:u:3`, 'three'], ['STRLEN', `${TAG}:u:3`]]))
  t.same(multi.r, { status: 200, json: [{ result: 'OK' }, { result: 5 }] }, 'a transaction on one new key runs on the importing node')
  fast('Upstash transaction', multi.ms)
  const ro = await timed(async () => await cmd('/multi-exec', [['GET', old[0]]]))
  t.same(ro.r, { status: 200, json: [{ result: old[0] }] }, 'a read-only transaction of a migrated key')
  fast('Upstash read-only transaction', ro.ms)
  // Several keys of the slot, some not on the node that would run them: Redis answers TRYAGAIN.
  const split = await timed(async () => await cmd('/multi-exec', [['MGET', old[0], old[7]]]))
  t.match(split.r, { status: 400, json: { error: /TRYAGAIN/ } }, 'MGET of keys split between the nodes: Redis\'s TRYAGAIN')
  fast('TRYAGAIN', split.ms)
  const two = await cmd('/multi-exec', [['SET', `${TAG}:u:4`, 'x'], ['INCR', `${TAG}:u:n`]])
  t.match(two, { status: 400, json: { error: /TRYAGAIN/ } }, 'a transaction of two keys, one new, on the importing node: Redis\'s TRYAGAIN')

  // On the servers: the new writes are on the importing master and its replica, not on the old owner.
  const written = [fresh, `${TAG}:new:b`, `${TAG}:u:1`, `${TAG}:u:2`, `${TAG}:u:3`, `${TAG}:u:n`]
  t.same(await askingGet(cluster, to.port, written), [fresh, `${TAG}:new:b`, 'one', 'two', 'three', '1'], `the writes are on the importing master :${to.port}`)
  t.same(await askingGet(cluster, to.port, [old[2]!, old[3]!]), ['replaced', null], 'the replaced key too; the deleted one is gone there')
  t.equal(await onNode(cluster, to.port, async c => await c.wait(1, 1000)), 1, 'its replica acknowledges everything it has')
  // The replica refuses keyed commands of a slot its master only imports: KEYS names them anyway.
  const onReplica = (await onNode(cluster, toReplica.port, async c => await c.keys(`${TAG}:*`))).sort()
  t.same(written.filter(k => !onReplica.includes(k)), [], `and on its replica :${toReplica.port}`)
  const onFrom = await onNode(cluster, fromPort, async c => await c.keys(`${TAG}:*`))
  t.same(onFrom.filter(k => written.includes(k)), [], 'none of them on the old owner')

  // The migration ends: every acknowledged key is on the new owner.
  await cluster.migrateSlot(slot, to.port)
  t.equal(await cluster.masterOf(slot), to.port, 'the slot is served by its new owner')
  // Every key written with value = key (seeded, or acknowledged during the migration).
  const lost = await cluster.lost([old[0]!, old[1]!, ...old.slice(4), fresh, `${TAG}:new:b`])
  t.same(lost, [], 'every acknowledged /kv key holds its value there')
  t.same(await onNode(cluster, to.port, async c => [await c.get(old[2]!), await c.exists(old[3]!), await c.get(`${TAG}:u:1`), await c.get(`${TAG}:u:n`)]),
    ['replaced', 0, 'one', '1'], 'the replaced key, the deleted one, the Upstash writes')
})
