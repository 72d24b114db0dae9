// Passwords for Redis and the sentinels work end to end, and never appear in logs, errors or /topology.
import t from 'tap'
import { startProcess } from './helpers/gateway.js'
import { topologyFor } from './helpers/topology.js'

const REDIS_PW = 'r3dis-S3cret-value'
const SENTINEL_PW = 's3ntinel-S3cret-value'
const topo = await topologyFor(t, { password: REDIS_PW, sentinelPassword: SENTINEL_PW })

t.test('a gateway with both passwords serves reads and writes and never reveals them', async t => {
  const gw = await startProcess(t, topo, { LOG_LEVEL: 'debug' })
  const put = await fetch(`${gw.url}/kv/secret%3A1`, { method: 'PUT', body: 'v', headers: { authorization: `Bearer ${REDIS_PW}` } })
  t.equal(put.status, 201)
  const get = await fetch(`${gw.url}/kv/secret%3A1`)
  t.equal(get.status, 200)
  t.equal(get.headers.get('x-served-by'), 'replica')
  const topology = await (await fetch(`${gw.url}/topology`)).text()
  t.match(topology, /"confirmed":true/)
  const code = await gw.stop()
  t.equal(code, 0, 'SIGTERM stops the gateway cleanly')
  const out = gw.output()
  t.match(out, /"msg":"request"/, 'the logs were captured')
  for (const secret of [REDIS_PW, SENTINEL_PW]) {
    t.notOk(out.includes(secret), 'no log line holds a password')
    t.notOk(topology.includes(secret), '/topology holds no password')
  }
})

t.test('a wrong Redis password fails readiness without printing any password', async t => {
  const wrong = 'wr0ng-Passw0rd-value'
  const err = await startProcess(t, topo, { REDIS_PASSWORD: wrong, LOG_LEVEL: 'debug' }, 8000).then(() => null, (e: Error) => e)
  t.ok(err, 'the gateway never became ready')
  t.match(err?.message, /not ready/)
  t.match(err?.message, /WRONGPASS|NOAUTH|redis connection error/, 'the log says what went wrong')
  t.notOk(err?.message.includes(wrong), 'the wrong password is not printed either')
})
