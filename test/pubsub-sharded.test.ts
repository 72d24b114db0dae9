// Sharded pub/sub (SSUBSCRIBE/SPUBLISH) in Sentinel mode, on a real master + 2 replicas + 3
// sentinels: SPUBLISH through the command endpoint (POST /, the path form, /pipeline) reaches a
// gateway `/ssubscribe` stream and a client SSUBSCRIBEd straight to the master (Redis counts both
// receivers there); the refusals (reserved `__x`, no `p`) with the reserved channel checked on the
// server afterwards; after SENTINEL FAILOVER the stream is on the new master and keeps receiving.
import t from 'tap'
import { startInProcess, untilSettled } from './helpers/gateway.js'
import { dropSilentConnections, until } from './helpers/pubsub.js'
import { checkRefusals, command, directSubscriber, shardNumsub, spublishUntilReceived, spublish } from './helpers/sharded-pubsub.js'
import { sse } from './helpers/sse.js'
import { topologyFor } from './helpers/topology.js'

const TOKEN = 'pubsub-sharded-token-1'
const NO_P = 'pubsub-sharded-rw-only-1'

t.test('sharded streams in Sentinel mode: SPUBLISH reaches /ssubscribe and the master\'s own subscribers, refusals, a failover', async (t) => {
  const topo = await topologyFor(t)
  const { url, app } = await startInProcess(t, topo, { AUTH_TOKENS: `${TOKEN}:rwp,${NO_P}:rw` })
  dropSilentConnections(t, app.server)
  await untilSettled(app)
  const masterPort = (await topo.master()).port
  const direct = await directSubscriber(topo.client(masterPort), ['sh:a'])
  const spy = await directSubscriber(topo.client(masterPort), ['__x'])
  const stream = await sse(`${url}/ssubscribe/sh:a/sh:b`, { authorization: `Bearer ${TOKEN}` })
  t.teardown(() => { stream.close(); direct.close(); spy.close() })
  await stream.waitFor(d => d === 'ssubscribe,sh:b,2')
  t.same(stream.data, ['ssubscribe,sh:a,1', 'ssubscribe,sh:b,2'], 'one confirmation per channel')
  t.equal(await shardNumsub(topo.client(masterPort), 'sh:b'), 1, 'the gateway SSUBSCRIBEd on the master')

  t.equal(await spublish(url, TOKEN, 'sh:a', 'm1'), 2, 'POST /: Redis counted two receivers on the master (the gateway and the direct client)')
  t.same((await command(url, TOKEN, '/spublish/sh:b/m2')).json, { result: 1 }, 'the path form')
  t.same((await command(url, TOKEN, '/pipeline', [['SPUBLISH', 'sh:a', 'm3'], ['SPUBLISH', 'sh:b', 'm4']])).json, [{ result: 2 }, { result: 1 }], 'a pipeline')
  await stream.waitFor(d => d === 'smessage,sh:b,m4')
  t.same(stream.data.slice(2), ['smessage,sh:a,m1', 'smessage,sh:b,m2', 'smessage,sh:a,m3', 'smessage,sh:b,m4'], 'the stream got every message, in order')
  await until(() => direct.got.length >= 2, 5000, 'the direct client\'s messages')
  t.same(direct.got, ['sh:a,m1', 'sh:a,m3'], 'the direct SSUBSCRIBE client got those of its channel')
  await command(url, TOKEN, '/', ['PUBLISH', 'sh:a', 'not-sharded'])

  await t.test('refused: a reserved channel, a token without p; the reserved channel got nothing', async (t) => {
    await checkRefusals(t, url, { p: TOKEN, noP: NO_P }, 'sh:a', spy, stream)
    t.notOk(stream.data.includes('smessage,sh:a,not-sharded'), 'a PUBLISH (not sharded) on the same name is another channel')
  })

  await t.test('SENTINEL FAILOVER: the stream moves to the new master and keeps receiving', async (t) => {
    const fo = await topo.failover()
    t.comment(`SENTINEL FAILOVER :${fo.from} -> :${fo.to} in ${fo.ms} ms`)
    const got = await spublishUntilReceived(url, TOKEN, 'sh:a', 'after-failover', stream, 20_000)
    t.ok(stream.data.some(d => /^gap,(master-change|connection-lost|node-switch),/.test(d)), `a gap event before: ${stream.data.filter(d => d.startsWith('gap,')).join(' ')}`)
    t.comment(`received ${got}`)
    const newMaster = topo.client(fo.to)
    t.teardown(() => newMaster.disconnect())
    await until(async () => await shardNumsub(topo.client(fo.to), 'sh:b') === 1, 15_000, 'the gateway subscribed on the new master')
    t.equal(await newMaster.call('SPUBLISH', 'sh:b', 'direct-on-new-master'), 1, 'SPUBLISH straight on the new master: the gateway is its subscriber')
    await stream.waitFor(d => d === 'smessage,sh:b,direct-on-new-master', 5000)
    t.equal(await spublish(url, TOKEN, 'sh:b', 'through-gateway'), 1, 'SPUBLISH through the gateway, on the new master')
    await stream.waitFor(d => d === 'smessage,sh:b,through-gateway', 5000)
    t.pass('both arrived on the stream')
  })
})
