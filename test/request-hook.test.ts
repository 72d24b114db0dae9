// The gateway's one per-request hook (src/request-hook.ts): every kind of answer carries helmet's
// headers (as src/plugins/security.ts computes them) and a request id, and a route that needs a
// token still gets 401 without one, with or without the hook split around load shedding.
import t from 'tap'
import { HELMET_OPTIONS, helmetHeaders } from '../src/plugins/security.js'
import { startInProcess } from './helpers/gateway.js'
import { topologyFor } from './helpers/topology.js'

const topo = await topologyFor(t)
const { headers: SECURITY } = helmetHeaders(HELMET_OPTIONS)

for (const [name, extra, key] of [['one hook', {}, 'hook%3Aone'], ['split around load shedding', { EVENT_LOOP_MAX_DELAY_MS: '1000' }, 'hook%3Asplit']] as const) {
  t.test(`${name}: security headers and a request id on every answer; 401 without a token`, async t => {
    const gw = await startInProcess(t, topo, { ...extra, AUTH_TOKENS: 'hook-token-1:rw' })
    const auth = { authorization: 'Bearer hook-token-1' }
    const answers = [
      await fetch(`${gw.url}/kv/${key}`, { method: 'PUT', body: 'v', headers: auth }),
      await fetch(`${gw.url}/kv/${key}`, { headers: auth }),
      await fetch(`${gw.url}/kv/hook%3Anone`, { headers: auth }),
      await fetch(`${gw.url}/kv/${key}`),
      await fetch(`${gw.url}/nowhere`, { headers: auth }),
      await fetch(`${gw.url}/healthz`)
    ]
    t.same(answers.map(r => r.status), [201, 200, 404, 401, 404, 200])
    for (const r of answers) {
      for (const [h, v] of Object.entries(SECURITY)) t.equal(r.headers.get(h), v, `${r.url} ${r.status}: ${h}`)
      t.match(r.headers.get('x-request-id'), /^[0-9a-f-]{36}$/, `${r.url} ${r.status}: x-request-id`)
    }
    const given = await fetch(`${gw.url}/healthz`, { headers: { 'x-request-id': 'mine-123' } })
    t.equal(given.headers.get('x-request-id'), 'mine-123', 'a request id sent by the client is kept')
  })
}
