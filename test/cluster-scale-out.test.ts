/**
 * Cluster mode while the cluster scales out: a 7th node joins (CLUSTER MEET) as a master serving no
 * slot and is a shard in the gateway's view at once (/topology, /readyz, metrics). A slot is held
 * mid-migration from an existing shard to it, and the requests on that slot answer at once: ASK to
 * the new node is followed (PUT, GET eventual and strong, DELETE, the command endpoint), writes there
 * are confirmed by WAIT 0 (it has no replica yet) and are on it (checked on the servers), nothing
 * 503s. Then the migration ends and the gateway routes the slot to the new shard.
 */
import calculateSlot from 'cluster-key-slot'
import t from 'tap'
import { askingGet, clusterFor, onNode, startClusterGateway } from './helpers/cluster.js'
import { KvClient, kvPath, pollUntil, type Answer } from './helpers/kv-client.js'
import type { NodeProc } from './helpers/topology-procs.js'

const BUDGET_MS = 5000
/** Far below the retry budget: an answer this fast did not wait for the migration. */
const AT_ONCE_MS = 1000
const cluster = await clusterFor(t)
const gw = await startClusterGateway(t, cluster, { REQUEST_RETRY_BUDGET_MS: String(BUDGET_MS) })
const api = new KvClient(gw.url)
const TAG = `{clscale:${process.pid}}`
const slot = calculateSlot(TAG)
/** Seeded with value = key; 0-3 are moved to the new node while the slot is held mid-migration. */
const old = Array.from({ length: 8 }, (_, i) => `${TAG}:old:${i}`)
const fresh = `${TAG}:new`

/** The part of a /topology shard this test reads. */
interface ShardView { id: string; slots: string[]; master: { port: number; confirmed: boolean } | null; requiredReplicas: number; replicas: unknown[] }

/** The shard /topology lists with its master on `port`, if any. */
async function shardOn (port: number): Promise<ShardView | undefined> {
  const { shards } = await api.topology() as unknown as { shards: ShardView[] }
  return shards.find(s => s.master?.port === port)
}

/** The command endpoint (POST / with a JSON array). */
const command = async (...args: string[]): Promise<Answer> =>
  await api.request('POST', '/', { headers: { 'content-type': 'application/json' }, body: JSON.stringify(args) })

let added: NodeProc
let shardId = ''
let fromPort = 0

t.test('a new empty master is a shard of the gateway from the moment the cluster lists it', async t => {
  for (const k of old) t.equal((await api.put(k, k)).status, 201, `seed ${k}`)
  added = await cluster.addNode()
  const { value: shard, ms } = await pollUntil(5000, 50, async () => {
    const s = await shardOn(added.port)
    return s?.master?.confirmed === true ? s : undefined
  })
  t.ok(shard, `/topology lists a shard mastered by the new node :${added.port} (${ms} ms)`)
  shardId = shard?.id ?? ''
  t.same(shard?.slots, [], 'serving no slot')
  t.same([shard?.requiredReplicas, shard?.replicas.length], [0, 0], 'no replica: WAIT 0 is the truth of its writes')
  t.equal(gw.app.cluster?.shards.at(-1)?.id, shardId, 'listed after the shards serving slots')
  t.equal((await api.request('GET', '/readyz')).status, 200, '/readyz: every shard, the new one too, has a writable master')
  const metrics = await (await fetch(`${gw.url}/metrics`)).text()
  t.ok(metrics.includes(`skv_shard_slots{shard="${shardId}"} 0`), 'skv_shard_slots labels it, with 0 slots')
})

t.test('a slot held mid-migration to the new node: ASK to it is followed at once', async t => {
  fromPort = await cluster.holdMigration(slot, added.port, old.slice(0, 4))
  await t.rejects(onNode(cluster, fromPort, async c => await c.get(old[0]!)), /^ASK /, 'the old owner answers ASK for a moved key')
  const seen = await pollUntil(3000, 50, async () => gw.app.cluster!.migrating(slot) ? true : undefined)
  t.ok(seen.value, `the gateway sees the slot migrating (${seen.ms} ms)`)
  const fast = (what: string, r: Answer): void => { t.ok(r.ms < AT_ONCE_MS, `${what}: ${Math.round(r.ms)} ms < ${AT_ONCE_MS} ms (the slot stays migrating)`) }
  const replicasOf = (r: Answer): unknown => (r.json as { replicas?: number } | undefined)?.replicas

  const moved = await api.put(old[0]!, 'replaced')
  t.equal(moved.status, 200, `PUT replacing a moved key: ${moved.text}`)
  t.equal(replicasOf(moved), 0, 'confirmed by WAIT 0: the new shard has no replica')
  fast('PUT of a moved key', moved)
  const created = await api.put(fresh, fresh)
  t.equal(created.status, 201, `PUT of a new key of the slot (the old owner answers ASK): ${created.text}`)
  fast('PUT of a new key', created)
  const stay = await api.put(old[5]!, 'stays')
  t.equal(stay.status, 200, `PUT of a key not moved yet: ${stay.text}`)
  t.equal(replicasOf(stay), 1, 'confirmed by the old shard\'s replica')

  const reads: Array<[string, string]> = [[old[1]!, old[1]!], [old[0]!, 'replaced'], [old[6]!, old[6]!]]
  for (const [key, want] of reads) {
    for (const query of ['', 'consistency=strong']) {
      const r = await api.request('GET', kvPath(key, query))
      t.same([r.status, r.text], [200, want], `GET ${key}${query === '' ? '' : ` (${query})`}`)
      fast(`GET ${query}`, r)
    }
  }
  const del = await api.del(old[2]!)
  t.ok(del.status === 200 || del.status === 204, `DELETE of a moved key: ${del.status} ${del.text}`)
  fast('DELETE of a moved key', del)
  t.equal((await api.request('GET', kvPath(old[2]!, 'consistency=strong'))).status, 404, 'then it is gone')
  const set = await command('SET', old[3]!, 'via-command')
  t.same([set.status, set.json], [200, { result: 'OK' }], 'command endpoint SET of a moved key')
  fast('command endpoint SET', set)
  const get = await command('GET', old[3]!)
  t.same([get.status, get.json], [200, { result: 'via-command' }], 'command endpoint GET of it')
  t.same(api.seen.filter(a => a.status >= 500).map(a => `${a.method} ${a.path} ${a.status} ${a.text}`), [], 'no request answered 5xx')

  // On the servers: the writes to moved or new keys are on the new node, the others on the old owner.
  t.same(await askingGet(cluster, added.port, [old[0]!, fresh, old[3]!, old[1]!, old[2]!]), ['replaced', fresh, 'via-command', old[1], null],
    `on the new node :${added.port}: the replaced key, the new key, the command endpoint's write; the deleted key gone`)
  t.same((await onNode(cluster, fromPort, async c => await c.keys(`${TAG}:*`))).sort(), old.slice(4), `on the old owner :${fromPort}: only the keys not moved`)
  t.equal(await onNode(cluster, fromPort, async c => await c.get(old[5]!)), 'stays', 'with the write to one of them')
  const shard = await shardOn(added.port)
  t.same([shard?.id, shard?.slots, shard?.master?.confirmed], [shardId, [], true], '/topology: still the same shard, no slot yet, its master confirmed')
})

t.test('the migration ends: the gateway routes the slot to the new shard', async t => {
  t.equal(await cluster.migrateSlot(slot, added.port), 4, 'the 4 keys left moved')
  t.equal(await cluster.masterOf(slot), added.port, 'the cluster says the new node serves the slot')
  const before = gw.app.cluster!.shardForSlot(slot).id
  t.comment(`the gateway's slot map before its next refresh: shard ${before} (${before === shardId ? 'already the new one' : 'the old one: the next request meets MOVED'})`)
  const after = `${TAG}:after`
  const put = await api.put(after, after)
  t.equal(put.status, 201, `PUT on the slot: ${put.text}`)
  t.ok(put.ms < BUDGET_MS, `within the retry budget (${Math.round(put.ms)} ms)`)
  const got = await api.request('GET', kvPath(after, 'consistency=strong'))
  t.same([got.status, got.text], [200, after], 'a strong GET of it')
  const { value: slots } = await pollUntil(3000, 50, async () => {
    const s = await shardOn(added.port)
    return s?.slots.length === 1 ? s.slots : undefined
  })
  t.same(slots, [String(slot)], '/topology: the slot on the new shard')
  t.equal(gw.app.cluster!.shardForSlot(slot).id, shardId, 'the gateway routes the slot there')
  t.same(await cluster.lost([old[1]!, ...old.slice(4, 5), ...old.slice(6), fresh, after]), [], 'every key written with value = key is on the new node')
  t.same(await onNode(cluster, added.port, async c => [await c.get(old[0]!), await c.get(old[3]!), await c.get(old[5]!), await c.exists(old[2]!)]),
    ['replaced', 'via-command', 'stays', 0], 'and the replaced, command-endpoint and deleted keys as acknowledged')
  t.same(api.seen.filter(a => a.status >= 500).map(a => `${a.method} ${a.path} ${a.status}`), [], 'no request answered 5xx')
})
