/**
 * Finding 9: `?%5Ftoken=<token>` and `?_tok%65n=<token>` authenticated but were logged as sent.
 * A real gateway process at LOG_LEVEL=debug gets the token in every spelling of `_token` on the
 * Upstash routes (where it authenticates: each answers 200, so the spelling really carried the
 * token), look-alikes that do not authenticate, the same on /kv, 404 and malformed paths; then its
 * whole log output is searched for the token. The log must still show each request (the line is
 * there, with `[redacted]` in place of the value), and no answer body may echo the token.
 */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { startProcess } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/edge-http.js'
import { topologyFor } from '../helpers/topology.js'

const TOKEN = `logged-${randomBytes(12).toString('hex')}`
const OTHER = `other-${randomBytes(12).toString('hex')}`
const topo = await topologyFor(t)
const KEY = `edge-logs:${process.pid}:${Date.now()}`

t.test('no spelling of ?_token= puts the token in a log line or an answer', async t => {
  const gw = await startProcess(t, topo, {
    LOG_LEVEL: 'debug',
    EVENT_LOOP_MAX_DELAY_MS: '0',
    AUTH_TOKENS: `${TOKEN}:rw,${OTHER}:r`,
    // This file counts log lines, not 401s.
    AUTH_FAILURES_MAX: '0'
  }, 40_000)
  const authenticating = ['_token', '%5Ftoken', '%5ftoken', '_tok%65n', '%5F%74%6F%6B%65%6E']
  const lookAlikes = ['_TOKEN', '_Token', 'token', 'access_token', '_to+ken', '%5FTOKEN']
  const bodies: string[] = []
  const requests: string[] = []
  /** Requests the router refuses before routing (bad percent-encoding, a key over the limit) get no request line. */
  let unrouted = 0
  const send = async (method: string, path: string, body?: string): Promise<number> => {
    const r = await rawRequest(gw.url, method, path, body === undefined ? {} : { 'content-type': 'application/json' }, body === undefined ? undefined : Buffer.from(body))
    bodies.push(`${r.status} ${JSON.stringify(r.headers)} ${r.body.toString('utf8')}`)
    requests.push(path)
    return r.status
  }

  for (const name of authenticating) {
    t.equal(await send('GET', `/set/${encodeURIComponent(KEY)}/v?${name}=${TOKEN}`), 200, `GET path form with ?${name}=: authenticated (200)`)
    t.equal(await send('POST', `/?a=1&${name}=${TOKEN}&b=2`, JSON.stringify(['GET', KEY])), 200, `?${name}= among other parameters: authenticated (200)`)
    t.equal(await send('POST', `/?${name}=${TOKEN}`, JSON.stringify(['GET', KEY])), 200, `POST / with ?${name}=: authenticated (200)`)
    t.equal(await send('GET', `/get/${encodeURIComponent(KEY)}??${name}=${TOKEN}`), 200, `a second '?' before ${name}: authenticated (200)`)
  }
  for (const name of lookAlikes) {
    t.equal(await send('GET', `/get/${encodeURIComponent(KEY)}?${name}=${TOKEN}`), 401, `?${name}= does not authenticate (401)`)
  }
  for (const name of [...authenticating, ...lookAlikes]) {
    t.equal(await send('GET', `/kv/${encodeURIComponent(KEY)}?${name}=${TOKEN}`), 401, `/kv with ?${name}=: the query is no credential there (401)`)
    await send('PUT', `/kv/${encodeURIComponent(KEY)}?${name}=${TOKEN}`, 'x')
    await send('GET', `/no/such/route?${name}=${TOKEN}`)
    await send('GET', `/kv/%ZZ?${name}=${TOKEN}`)
    await send('GET', `/kv/${'k'.repeat(5000)}?${name}=${TOKEN}`)
    unrouted += 2
  }
  // The header too, with a query token of another token in the same request.
  t.equal(await send('GET', `/get/${encodeURIComponent(KEY)}?_token=${OTHER}`), 200, 'the read-only token as ?_token=')
  const code = await gw.stop()
  t.equal(code, 0, 'the gateway stopped cleanly')

  const out = gw.output()
  if (process.env.EDGE_LOGS_DUMP !== undefined) console.error(out)
  const lines = out.split('\n').filter(l => l.trim() !== '')
  const requestLines = lines.filter(l => l.includes('"msg":"request"') || l.includes('"msg":"request failed"'))
  const routed = requests.length - unrouted
  t.ok(requestLines.length >= routed, `one log line per routed request (${requestLines.length} lines for ${routed} requests)`)
  const redacted = requestLines.filter(l => /"url":"[^"]*=\[redacted\]/.test(l)).length
  t.equal(redacted, routed, `each of them logs its URL, with [redacted] in place of the token (${redacted} lines)`)
  for (const secret of [TOKEN, OTHER]) {
    const leaks = lines.filter(l => l.includes(secret))
    t.same(leaks, [], 'no log line holds the token')
    t.same(bodies.filter(b => b.includes(secret)), [], 'no answer echoes the token')
  }
})
