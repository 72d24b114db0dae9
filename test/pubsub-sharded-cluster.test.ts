// Sharded pub/sub (SSUBSCRIBE/SPUBLISH) in Redis Cluster mode, on a real cluster of 3 masters + 3
// replicas: channels on two shards, SPUBLISH through the command endpoint (POST /, the path form,
// a pipeline spanning both shards) runs on each channel's shard master and reaches the gateway's
// `/ssubscribe` streams and clients SSUBSCRIBEd straight to those masters (Redis counts both there);
// a stream's channels of different slots: 400 CROSSSLOT; the refusals, with the reserved channel
// checked on its node afterwards; CLUSTER FAILOVER of one stream's shard: that stream keeps
// receiving, from the new master, the other stream is untouched; the other stream's slot migrated
// to another shard: it keeps receiving from there.
import calculateSlot from 'cluster-key-slot'
import t from 'tap'
import { clusterFor, startClusterGateway } from './helpers/cluster.js'
import { pollUntil } from './helpers/kv-client.js'
import { dropSilentConnections, until } from './helpers/pubsub.js'
import { checkRefusals, command, directSubscriber, refusedStream, shardNumsub, spublish, spublishUntilReceived } from './helpers/sharded-pubsub.js'
import { sse } from './helpers/sse.js'

const TOKEN = 'pubsub-sharded-cluster-token-1'
const NO_P = 'pubsub-sharded-cluster-rw-only-1'

t.test('sharded streams in Cluster mode: each channel on its shard\'s master, CROSSSLOT, refusals, a shard failover', async (t) => {
  const cluster = await clusterFor(t, { nodeTimeoutMs: 1000 })
  const { url, app } = await startClusterGateway(t, cluster, { AUTH_TOKENS: `${TOKEN}:rwp,${NO_P}:rw` })
  dropSilentConnections(t, app.server)
  await pollUntil(20_000, 100, async () => {
    const shards = app.cluster?.shards ?? []
    return shards.length === 3 && shards.every(s => s.snapshot.masterConfirmed && s.snapshot.replicas.filter(r => r.healthy).length === 1) ? true : undefined
  })
  // Two hash tags served by two different masters: `{tA}1`, `{tA}2` on one shard, `{tB}1` on another.
  const tags: Array<{ tag: string; slot: number; port: number }> = []
  for (let i = 0; tags.length < 2; i++) {
    const slot = calculateSlot(`t${i}`)
    const port = await cluster.masterOf(slot)
    if (!tags.some(x => x.port === port)) tags.push({ tag: `t${i}`, slot, port })
  }
  const [A, B] = tags as [typeof tags[0], typeof tags[0]]
  const a1 = `{${A.tag}}1`
  const a2 = `{${A.tag}}2`
  const b1 = `{${B.tag}}1`
  const path = (...names: string[]): string => `/ssubscribe/${names.map(encodeURIComponent).join('/')}`
  const auth = { authorization: `Bearer ${TOKEN}` }

  const directA = await directSubscriber(cluster.client(A.port), [a1])
  const directB = await directSubscriber(cluster.client(B.port), [b1])
  const spy = await directSubscriber(cluster.client(await cluster.masterOf(calculateSlot('__x'))), ['__x'])
  const streamA = await sse(`${url}${path(a1, a2)}`, auth)
  const streamB = await sse(`${url}${path(b1)}`, auth)
  t.teardown(() => { streamA.close(); streamB.close(); directA.close(); directB.close(); spy.close() })
  await streamA.waitFor(d => d === `ssubscribe,${a2},2`)
  await streamB.waitFor(d => d === `ssubscribe,${b1},1`)
  t.equal(await shardNumsub(cluster.client(A.port), a2), 1, `the gateway SSUBSCRIBEd ${a2} on its shard's master :${A.port}`)
  t.equal(await shardNumsub(cluster.client(B.port), b1), 2, `and ${b1} on :${B.port} (with the direct client)`)

  t.equal(await spublish(url, TOKEN, a1, 'm1'), 2, `POST /: run on :${A.port}, Redis counted the gateway and the direct client`)
  t.same((await command(url, TOKEN, `/spublish/${encodeURIComponent(b1)}/m2`)).json, { result: 2 }, `the path form: run on :${B.port}`)
  t.same((await command(url, TOKEN, '/pipeline', [['SPUBLISH', a2, 'm3'], ['SPUBLISH', b1, 'm4'], ['SPUBLISH', a1, 'm5']])).json,
    [{ result: 1 }, { result: 2 }, { result: 2 }], 'a pipeline over both shards: each on its own')
  await streamA.waitFor(d => d === `smessage,${a1},m5`)
  await streamB.waitFor(d => d === `smessage,${b1},m4`)
  t.same(streamA.data.slice(2), [`smessage,${a1},m1`, `smessage,${a2},m3`, `smessage,${a1},m5`], 'stream A got its channels\' messages, in order')
  t.same(streamB.data.slice(1), [`smessage,${b1},m2`, `smessage,${b1},m4`], 'stream B its own')
  await until(() => directA.got.length >= 2 && directB.got.length >= 2, 5000, 'the direct clients\' messages')
  t.same([directA.got, directB.got], [[`${a1},m1`, `${a1},m5`], [`${b1},m2`, `${b1},m4`]], 'the direct SSUBSCRIBE clients got theirs')

  await t.test('channels of different slots in one stream: 400 CROSSSLOT', async (t) => {
    const [status, text] = await refusedStream(url, path(a1, b1), TOKEN)
    t.equal(status, 400)
    t.same(JSON.parse(text), { error: 'CROSSSLOT Keys in request don\'t hash to the same slot' })
  })

  await t.test('refused: a reserved channel, a token without p; the reserved channel got nothing', async (t) => {
    await checkRefusals(t, url, { p: TOKEN, noP: NO_P }, a1, spy, streamA)
  })

  await t.test('CLUSTER FAILOVER of stream A\'s shard: it keeps receiving, from the new master', async (t) => {
    const view = await cluster.view()
    const replica = view.find(n => n.masterId === view.find(m => m.port === A.port)!.id)!
    const r = cluster.client(replica.port)
    try { await r.call('CLUSTER', 'FAILOVER') } finally { r.disconnect() }
    await until(async () => await cluster.masterOf(A.slot) === replica.port, 10_000, `:${replica.port} to serve shard A`)
    const got = await spublishUntilReceived(url, TOKEN, a1, 'after-failover', streamA, 15_000)
    t.comment(`received ${got}`)
    t.match(streamA.data.filter(d => d.startsWith('gap,')), [/^gap,(master-change|connection-lost),/], 'one gap event')
    await until(async () => await shardNumsub(cluster.client(replica.port), a2) === 1, 10_000, 'the gateway subscribed on the new master')
    const direct = cluster.client(replica.port)
    t.teardown(() => direct.disconnect())
    t.equal(await direct.call('SPUBLISH', a2, 'direct-on-new-master'), 1, `SPUBLISH straight on the new master :${replica.port}: the gateway is its subscriber`)
    await streamA.waitFor(d => d === `smessage,${a2},direct-on-new-master`, 5000)
    t.equal(await spublish(url, TOKEN, b1, 'b-after'), 2, 'the other shard: as before')
    await streamB.waitFor(d => d === `smessage,${b1},b-after`, 5000)
    t.same(streamB.data.filter(d => d.startsWith('gap,')), [], 'no gap on the other shard\'s stream')
  })

  await t.test('stream B\'s slot moves to another shard (Redis drops it there): it keeps receiving, from the new owner', async (t) => {
    const view = await cluster.view()
    const to = view.find(n => n.role === 'master' && !n.failed && n.slots.length > 0 && n.port !== B.port)!.port
    await cluster.migrateSlot(B.slot, to)
    const got = await spublishUntilReceived(url, TOKEN, b1, 'after-move', streamB, 15_000)
    t.comment(`slot ${B.slot} moved :${B.port} -> :${to}; received ${got}`)
    t.match(streamB.data.filter(d => d.startsWith('gap,')), [/^gap,(node-switch|connection-lost),/], 'one gap event')
    await until(async () => await shardNumsub(cluster.client(to), b1) === 1, 10_000, 'the gateway subscribed on the new owner')
    t.equal(await spublish(url, TOKEN, b1, 'moved-through-gateway'), 1, `SPUBLISH through the gateway runs on :${to}, where the gateway is the one subscriber`)
    await streamB.waitFor(d => d === `smessage,${b1},moved-through-gateway`, 5000)
    t.pass('arrived on the stream')
  })
})
