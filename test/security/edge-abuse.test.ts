/**
 * Findings 12 and 13: 401s were never limited (~1,900 token guesses per second from one client),
 * and without a trusted-proxy setting X-Forwarded-For could not name the client. Against a real
 * topology, with RATE_LIMIT_MAX=0 (the 401 limit stands on its own), from distinct loopback source
 * addresses (127.0.0.x):
 *  - a guessing client gets AUTH_FAILURES_MAX 401s, then 429 GW_ERR_RATE_LIMITED with Retry-After on
 *    every route that needs a token (Upstash shape on the Upstash routes), even with the right token,
 *    so a correct guess cannot be told apart; another address is not affected; public routes stay
 *    open; the window ends and the client is served again;
 *  - cross-site requests (what an <img> on another site sends) are refused before authentication, so
 *    a page cannot make its visitors' addresses spend their 401 budget;
 *  - X-Forwarded-For is ignored by default (a new value per guess buys nothing);
 *  - TRUST_PROXY=<address>: behind that proxy each forwarded client has its own 401 budget, and a
 *    client that is not the proxy still cannot spoof it; TRUST_PROXY=1 (hops) the same.
 * The data is checked on the master: the guesses wrote nothing.
 */
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { startInProcess } from '../helpers/gateway.js'
import { httpRequest, type NodeAnswer } from '../helpers/edge-http.js'
import { topologyFor } from '../helpers/topology.js'

const MAX = 5
const TOKEN = `abuse-${randomBytes(12).toString('hex')}`
const topo = await topologyFor(t)
const KEY = `edge-abuse:${process.pid}:${Date.now()}`
const base = { EVENT_LOOP_MAX_DELAY_MS: '0', RATE_LIMIT_MAX: '0', AUTH_TOKENS: `${TOKEN}:rw`, AUTH_FAILURES_MAX: String(MAX), AUTH_FAILURES_WINDOW_MS: '30000' }

async function onMaster (key: string): Promise<string | null> {
  const c = topo.client((await topo.masterProc()).port)
  try { return await c.get(key) } finally { await c.quit() }
}

const guess = (): string => `Bearer guess-${randomBytes(12).toString('hex')}`
type Send = (path: string, opts?: { from?: string; auth?: string; xff?: string; method?: string; body?: string }) => Promise<NodeAnswer>
const sender = (url: string): Send => async (path, o = {}) => await httpRequest(`${url}${path}`, {
  method: o.method ?? 'GET',
  localAddress: o.from ?? '127.0.0.1',
  headers: { ...(o.auth === undefined ? {} : { authorization: o.auth }), ...(o.xff === undefined ? {} : { 'x-forwarded-for': o.xff }), ...(o.body === undefined ? {} : { 'content-type': 'application/json' }) },
  ...(o.body === undefined ? {} : { body: o.body })
})

function assert429 (t: Test, r: NodeAnswer, what: string, shape: 'gateway' | 'upstash'): void {
  t.equal(r.status, 429, `${what}: 429`)
  const retryAfter = Number(r.headers['retry-after'])
  t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 30, `${what}: Retry-After in 1..30 s (got ${r.headers['retry-after']})`)
  if (shape === 'gateway') t.equal((r.json as { error?: { code?: string } }).error?.code, 'GW_ERR_RATE_LIMITED', `${what}: GW_ERR_RATE_LIMITED`)
  else t.match((r.json as { error?: unknown }).error, /^GW_ERR_RATE_LIMITED /, `${what}: Upstash shape {"error":"GW_ERR_RATE_LIMITED ..."}`)
}

/** `n` guesses from `from` (each with a new X-Forwarded-For when `xff` is given): their statuses. */
async function guesses (send: Send, n: number, from: string, xff?: (i: number) => string): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push((await send(`/kv/${encodeURIComponent(KEY)}`, { from, auth: guess(), method: 'PUT', body: '"guessed"', ...(xff === undefined ? {} : { xff: xff(i) }) })).status)
  return out
}

t.test('401 flood: AUTH_FAILURES_MAX answers, then 429 for the address whatever it sends', async t => {
  const gw = await startInProcess(t, topo, base)
  const send = sender(gw.url)
  const statuses = await guesses(send, MAX + 3, '127.0.0.3')
  t.same(statuses, [...Array(MAX).fill(401), 429, 429, 429], `${MAX} guesses answered 401, then 429 (got ${statuses.join(',')})`)
  assert429(t, await send(`/kv/${encodeURIComponent(KEY)}`, { from: '127.0.0.3', auth: guess() }), 'another guess', 'gateway')
  assert429(t, await send(`/kv/${encodeURIComponent(KEY)}`, { from: '127.0.0.3', auth: `Bearer ${TOKEN}` }), 'the right token from the blocked address (a correct guess looks like a wrong one)', 'gateway')
  assert429(t, await send(`/get/${encodeURIComponent(KEY)}`, { from: '127.0.0.3', auth: `Bearer ${TOKEN}` }), 'Upstash path form', 'upstash')
  assert429(t, await send(`/get/${encodeURIComponent(KEY)}?_token=${TOKEN}`, { from: '127.0.0.3' }), 'Upstash ?_token=', 'upstash')
  assert429(t, await send('/', { from: '127.0.0.3', method: 'POST', body: JSON.stringify(['GET', KEY]) }), 'POST / without a token', 'upstash')
  t.equal((await send('/healthz', { from: '127.0.0.3' })).status, 200, '/healthz needs no token: still answered')
  const other = await send(`/kv/${encodeURIComponent(KEY)}`, { from: '127.0.0.4', auth: `Bearer ${TOKEN}` })
  t.equal(other.status, 404, `another address with the right token is served (404: no such key; got ${other.status})`)
  t.equal(await onMaster(KEY), null, 'no guess wrote anything')
})

t.test('a page on another site cannot spend its visitors\' 401 budget', async t => {
  const gw = await startInProcess(t, topo, base)
  const send = sender(gw.url)
  const statuses: number[] = []
  for (let i = 0; i < MAX * 2; i++) {
    // What <img src="http://gw/set/k/1"> in a page on another site sends: no token, no Origin.
    const r = await httpRequest(`${gw.url}/set/${encodeURIComponent(KEY)}/1`, { localAddress: '127.0.0.11', headers: { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'image' } })
    statuses.push(r.status)
  }
  t.same(statuses, Array(MAX * 2).fill(403), `refused as cross-site (403) before authentication, not 401 (got ${statuses.join(',')})`)
  const after = await send(`/kv/${encodeURIComponent(KEY)}`, { from: '127.0.0.11', auth: `Bearer ${TOKEN}` })
  t.equal(after.status, 404, `the visitor's own requests are still served (got ${after.status})`)
  t.equal(await onMaster(KEY), null, 'nothing written')
})

t.test('Upstash ?_token= guesses count like header guesses', async t => {
  const gw = await startInProcess(t, topo, base)
  const send = sender(gw.url)
  const statuses: number[] = []
  for (let i = 0; i < MAX + 1; i++) {
    const r = i % 2 === 0
      ? await send(`/set/${encodeURIComponent(KEY)}/x?_token=guess-${randomBytes(8).toString('hex')}`, { from: '127.0.0.5' })
      : await send('/', { from: '127.0.0.5', method: 'POST', auth: guess(), body: JSON.stringify(['SET', KEY, 'x']) })
    statuses.push(r.status)
  }
  t.same(statuses, [...Array(MAX).fill(401), 429], `query and header guesses share one count (got ${statuses.join(',')})`)
  t.equal(await onMaster(KEY), null, 'nothing written')
})

t.test('the block ends with the window', async t => {
  const gw = await startInProcess(t, topo, { ...base, AUTH_FAILURES_MAX: '2', AUTH_FAILURES_WINDOW_MS: '1500' })
  const send = sender(gw.url)
  t.same(await guesses(send, 3, '127.0.0.6'), [401, 401, 429], 'blocked after 2')
  t.equal((await send(`/kv/${encodeURIComponent(KEY)}`, { from: '127.0.0.6', auth: `Bearer ${TOKEN}` })).status, 429, 'blocked with the right token too')
  await new Promise(resolve => setTimeout(resolve, 1600))
  t.equal((await send(`/kv/${encodeURIComponent(KEY)}`, { from: '127.0.0.6', auth: `Bearer ${TOKEN}` })).status, 404, 'after the window: served again')
})

t.test('X-Forwarded-For is ignored unless TRUST_PROXY says whom to trust', async t => {
  const gw = await startInProcess(t, topo, base)
  const spoofed = await guesses(sender(gw.url), MAX + 2, '127.0.0.7', i => `10.0.0.${i + 1}`)
  t.same(spoofed, [...Array(MAX).fill(401), 429, 429], `a new X-Forwarded-For per guess buys nothing (got ${spoofed.join(',')})`)
})

t.test('TRUST_PROXY=<proxy address>: each forwarded client has its own budget; others cannot spoof', async t => {
  const gw = await startInProcess(t, topo, { ...base, TRUST_PROXY: '127.0.0.8' })
  const send = sender(gw.url)
  const one = await guesses(send, MAX + 1, '127.0.0.8', () => '203.0.113.1')
  t.same(one, [...Array(MAX).fill(401), 429], `client 203.0.113.1 behind the proxy: ${MAX} then 429 (got ${one.join(',')})`)
  const two = await guesses(send, 2, '127.0.0.8', () => '203.0.113.2')
  t.same(two, [401, 401], 'client 203.0.113.2 behind the same proxy has its own budget')
  const ok = await send(`/kv/${encodeURIComponent(KEY)}`, { from: '127.0.0.8', xff: '203.0.113.3', auth: `Bearer ${TOKEN}` })
  t.equal(ok.status, 404, 'a third client through the proxy is served')
  const direct = await guesses(send, MAX + 1, '127.0.0.9', i => `198.51.100.${i + 1}`)
  t.same(direct, [...Array(MAX).fill(401), 429], `a client that is not the proxy cannot spoof X-Forwarded-For (got ${direct.join(',')})`)
  const blocked = await send(`/kv/${encodeURIComponent(KEY)}`, { from: '127.0.0.8', xff: '203.0.113.1', auth: `Bearer ${TOKEN}` })
  t.equal(blocked.status, 429, 'the blocked forwarded client stays blocked, whichever proxy connection it comes through')
})

t.test('TRUST_PROXY=1 (hops): the address the proxy saw is the client, earlier entries are the client\'s own words', async t => {
  const gw = await startInProcess(t, topo, { ...base, TRUST_PROXY: '1' })
  const send = sender(gw.url)
  const statuses = await guesses(send, MAX + 1, '127.0.0.10', i => `192.0.2.${i + 1}, 203.0.113.50`)
  t.same(statuses, [...Array(MAX).fill(401), 429], `forged leftmost entries change nothing: one client 203.0.113.50 (got ${statuses.join(',')})`)
  t.equal((await guesses(send, 1, '127.0.0.10', () => '203.0.113.51'))[0], 401, 'another client through the proxy has its own budget')
  t.equal(await onMaster(KEY), null, 'nothing written')
})
