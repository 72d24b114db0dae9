/**
 * The HTTP edge (findings 8, 9, 12, 13, 15, 16), replayed over plain HTTP with the headers a browser
 * or an attacker sends (the real-Chromium runs of 16 are the edge's own browser tests).
 * 8. Rate-limit counters were ordinary keys: writable, listable, named by unsalted token hashes.
 * 9. `?%5Ftoken=` and `?_tok%65n=` authenticated and were logged as sent.
 * 12. `?_token=` was limited per IP, not per token; no TRUST_PROXY.
 * 13. 401s were never limited.
 * 15. /topology and /metrics answered any token.
 * 16. An open gateway accepted cross-site writes (img GET, no-cors text/plain POST).
 * The main gateway is a real process (its log is the evidence of 9); the others are in-process.
 */
import { createHash } from 'node:crypto'
import t from 'tap'
import { startInProcess } from '../helpers/gateway.js'
import { AUTH_TOKENS, checkServers, securityEnv, TOKENS } from '../helpers/security.js'
import { expectRefused, ROUTES, send } from '../helpers/security-http.js'

const LIMIT = 20
const LIMITED = { a: 'sec-limited-token-0004', b: 'sec-limited-token-0005' }
const env = await securityEnv(t, {
  process: true,
  env: {
    AUTH_TOKENS: `${AUTH_TOKENS},${LIMITED.a}:rw,${LIMITED.b}:rw`,
    RATE_LIMIT_MAX: String(LIMIT),
    RATE_LIMIT_WINDOW_MS: '60000',
    LOG_LEVEL: 'info'
  }
})
const proc = env.proc!
const ALL_TOKENS = [...Object.values(TOKENS), ...Object.values(LIMITED)]

const get = async (path: string, headers: Record<string, string> = {}, base = env.url, init: RequestInit = {}): Promise<{ status: number; text: string }> => {
  const r = await fetch(base + path, { headers, signal: AbortSignal.timeout(10_000), ...init })
  return { status: r.status, text: await r.text() }
}
const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

/** Every key on the master (SCAN, latin1). */
const allKeys = async (): Promise<string[]> => (await env.master.keys('*')).sort()

t.test('finding 15: /topology and /metrics need the ops right', async t => {
  for (const path of ['/topology', '/metrics']) {
    for (const kind of ['reader', 'sess'] as const) {
      const r = await get(path, bearer(TOKENS[kind]))
      t.equal(r.status, 403, `${kind} GET ${path} is 403 (got ${r.status})`)
      t.notOk(r.text.includes('127.0.0.1:'), `${kind} GET ${path}: no node address in the answer`)
      const q = (await get(`${path}?_token=${TOKENS[kind]}`)).status
      t.ok(q === 403 || q === 401, `${kind} GET ${path}?_token= is refused (403, or 401 where ?_token= is not accepted; got ${q})`)
    }
    t.equal((await get(path)).status, 401, `no token: GET ${path} is 401`)
    t.equal((await get(path, bearer(TOKENS.admin))).status, 200, `admin (o) GET ${path} is 200`)
  }
})

t.test('finding 8: rate-limit counters are reserved keys: named without token material, unreachable, unlisted', async t => {
  for (let i = 0; i < 3; i++) {
    for (const token of ALL_TOKENS) await get('/get/session%3Ax', bearer(token))
  }
  const keys = await allKeys()
  const counters = keys.filter(k => /ratelimit/i.test(k))
  t.ok(counters.length > 0, `the limiter keeps counters on the master (${counters.join(' ')})`)
  t.same(counters.filter(k => !k.startsWith('__skv:')), [], 'every counter is under the reserved prefix __skv:')
  const material = ALL_TOKENS.flatMap(tk => [tk, createHash('sha256').update(tk).digest('hex').slice(0, 24), createHash('sha256').update(tk).digest('base64url').slice(0, 16)])
  t.same(keys.filter(k => material.some(m => k.includes(m))), [], 'no key name holds a token or a hash of one')
  t.same(keys.filter(k => k.startsWith('skv-gateway-ratelimit')), [], 'no counter under the old guessable name')

  // ADMIN (every right) attacks the counters and the reserved canary through a gateway of its own
  // without a limiter (the keys are the same on the master; ADMIN's own budget is not the point here).
  const plain = await startInProcess(t, env.topo, { AUTH_TOKENS })
  const victims = [...counters.slice(0, 3), '__skv:canary']
  const valuesBefore = await Promise.all(victims.map(async k => await env.master.get(k)))
  for (const k of victims) {
    for (const cmd of [['GET', k], ['SET', k, 'not-a-number'], ['DEL', k], ['INCRBY', k, '-1000000'], ['EXPIRE', k, '999999'], ['PERSIST', k],
      ['TYPE', k], ['EXISTS', k], ['OBJECT', 'ENCODING', k], ['RENAME', k, 'stolen'], ['SETRANGE', k, '0', 'x'], ['DUMP', k]]) {
      await expectRefused(t, plain.url, 'admin', TOKENS.admin, cmd, 403, ROUTES)
    }
    // COPY is refused for what it is (400) before its keys are looked at.
    await expectRefused(t, plain.url, 'admin', TOKENS.admin, ['COPY', k, 'stolen'], 400, ROUTES)
    await expectRefused(t, plain.url, 'admin', TOKENS.admin, ['MSET', 'canary:x', '1', k, '1'], 403, ['single'])
    await expectRefused(t, plain.url, 'admin', TOKENS.admin, ['RENAME', 'canary:string', k], 403, ['single'])
  }
  const valuesAfter = await Promise.all(victims.map(async k => await env.master.get(k)))
  // Nobody sent a request through the limited gateway meanwhile: every counter holds what it held.
  t.same(valuesAfter, valuesBefore, 'the counters and the reserved canary are unchanged')

  // Listing: SCAN never shows a reserved key, MATCH on the prefix is refused or empty, KEYS is outside the allowlist.
  let cursor = '0'
  const listed: string[] = []
  do {
    const o = await send(plain.url, TOKENS.admin, 'single', ['SCAN', cursor, 'COUNT', '1000'])
    const result = (o.entry?.result ?? ['0', []]) as [string, string[]]
    t.equal(o.status, 200, `admin SCAN ${cursor} answers 200 (${o.text.slice(0, 100)})`)
    cursor = String(result[0])
    listed.push(...(result[1] ?? []))
  } while (cursor !== '0')
  t.ok(listed.length > 0, `SCAN lists the ordinary keys (${listed.length})`)
  t.same(listed.filter(k => k.startsWith('__skv:')), [], 'SCAN lists no reserved key')
  const match = await send(plain.url, TOKENS.admin, 'single', ['SCAN', '0', 'MATCH', '__skv:*', 'COUNT', '1000'])
  const matched = ((match.entry?.result ?? ['0', []]) as [string, string[]])[1] ?? []
  t.ok(match.status === 403 || (match.status === 200 && matched.length === 0), `SCAN MATCH __skv:* is refused or empty (${match.status} ${match.text.slice(0, 100)})`)
  await expectRefused(t, plain.url, 'admin', TOKENS.admin, ['KEYS', '*'], 400, ROUTES)
  const random = new Set<string>()
  for (let i = 0; i < 30; i++) random.add(String((await send(plain.url, TOKENS.admin, 'single', ['RANDOMKEY'])).entry?.result))
  t.same([...random].filter(k => k.startsWith('__skv:')), [], `RANDOMKEY never answers a reserved key (${random.size} distinct answers)`)

  // The limit still holds for LIMITED.a (its counter could not be tampered with).
  const statuses: number[] = []
  for (let i = 0; i < LIMIT + 5; i++) statuses.push((await get('/get/session%3Ax', bearer(LIMITED.a))).status)
  t.ok(statuses.filter(s => s !== 429).length <= LIMIT - 3, `at most ${LIMIT} requests per window pass (${statuses.join(' ')})`)
  t.ok(statuses.slice(-5).every(s => s === 429), 'the last requests of the burst get 429')
})

t.test('finding 12: ?_token= counts against its token, like the header', async t => {
  // LIMITED.b already spent a few requests above: spend the rest of its window with the header.
  const statuses: number[] = []
  while (statuses.length < LIMIT && statuses.at(-1) !== 429) statuses.push((await get('/get/session%3Ax', bearer(LIMITED.b))).status)
  t.ok(statuses.filter(s => s === 200).length >= LIMIT - 5 && statuses.at(-1) === 429, `the header spends the window (${statuses.join(' ')})`)
  t.equal((await get(`/get/session%3Ax?_token=${LIMITED.b}`)).status, 429, 'then ?_token= of the same token gets 429')
  const kv = (await get(`/kv/session%3Ax?_token=${LIMITED.b}`)).status
  t.ok(kv === 429 || kv === 401, `on /kv too: 429, or 401 where ?_token= is not accepted (got ${kv})`)
  t.not((await get(`/get/session%3Ax?%5Ftoken=${LIMITED.b}`)).status, 200, '?%5Ftoken= does not get around it')
  t.equal((await get('/get/session%3Ax', bearer(TOKENS.reader))).status, 200, 'another token from the same address is not limited')
})

t.test('finding 9: no token in any log line, whatever the spelling of _token', async t => {
  const enc = (s: string): string => [...Buffer.from(s)].map(b => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('')
  const tk = TOKENS.reader
  const wrong = 'sec-wrong-token-9999'
  const spellings = [
    `/get/canary%3Astring?_token=${tk}`, `/get/canary%3Astring?%5Ftoken=${tk}`, `/get/canary%3Astring?_tok%65n=${tk}`,
    `/get/canary%3Astring?${enc('_token')}=${enc(tk)}`, `/get/canary%3Astring?_token=${tk}&_token=${tk}`, `/get/canary%3Astring?a=1&_token=${tk}#x`,
    `/kv/canary%3Astring?_token=${tk}`, `/kv/canary%3Astring?%5Ftoken=${tk}`, `/topology?_token=${tk}`, `/get/canary%3Astring?_token=${wrong}`,
    `/get/canary%3Astring?_TOKEN=${tk}`, `/get/canary%3Astring?_token=${encodeURIComponent(tk).replace(/-/g, '%2D')}`
  ]
  const statuses: string[] = []
  for (const p of spellings) statuses.push(`${(await get(p)).status}`)
  await get('/get/canary%3Astring', bearer(tk))
  await get('/get/canary%3Astring', bearer(wrong))
  t.comment(`statuses: ${statuses.join(' ')}`)
  await new Promise(resolve => setTimeout(resolve, 500))
  const out = proc.output()
  t.ok(/canary/.test(out), 'the gateway logged the requests (the log is not empty)')
  const forms = [tk, wrong, enc(tk), encodeURIComponent(tk).replace(/-/g, '%2D'), tk.slice(4, 16)]
  for (const f of forms) t.notOk(out.includes(f), `the log never holds ${JSON.stringify(f.slice(0, 12))}...`)
})

t.test('finding 16: cross-site writes are refused (plain HTTP with browser headers), curl keeps working', async t => {
  const open = await startInProcess(t, env.topo, { CORS_ORIGINS: 'https://app.example' })
  const img = { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'image' }
  const noCors = { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'empty', 'content-type': 'text/plain;charset=UTF-8' }
  const form = { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', 'content-type': 'application/x-www-form-urlencoded' }
  const cases: Array<[string, string, Record<string, string>, string | undefined]> = [
    ['GET', '/set/open%3Aimg/1', img, undefined],
    ['GET', '/set/open%3Asamesite/1', { ...img, 'sec-fetch-site': 'same-site' }, undefined],
    ['GET', '/incr/open%3Aimg2', img, undefined],
    ['POST', '/', noCors, '["SET","open:nocors","1"]'],
    ['POST', '/pipeline', noCors, '[["SET","open:pipe","1"]]'],
    ['POST', '/multi-exec', noCors, '[["SET","open:multi","1"]]'],
    ['POST', '/set/open%3Aform/1', form, 'a=b'],
    ['POST', '/', { origin: 'https://evil.example', 'content-type': 'text/plain' }, '["SET","open:old","1"]'],
    ['POST', '/', { ...noCors, origin: 'null' }, '["SET","open:null","1"]'],
    ['PUT', '/kv/open%3Aput', noCors, 'x'],
    ['DELETE', '/kv/canary%3Astring', noCors, undefined],
    ['POST', '/kv/_batch', noCors, '{"ops":[{"op":"set","key":"open:batch","value":"1"}]}']
  ]
  for (const [method, path, headers, body] of cases) {
    const r = await get(path, headers, open.url, { method, ...(body === undefined ? {} : { body }) })
    t.equal(r.status, 403, `open gateway: ${method} ${path} from another site is 403 (got ${r.status} ${r.text.slice(0, 100)})`)
  }
  // With tokens too: a page that knows a token puts it in the URL of an <img>.
  const tokenImg = await get(`/set/session%3Aimg/1?_token=${TOKENS.sess}`, img)
  t.equal(tokenImg.status, 403, `token gateway: <img src=/set/session:img/1?_token=...> is 403 (got ${tokenImg.status})`)
  const written = (await allKeys()).filter(k => k.startsWith('open:') || k === 'session:img')
  t.same(written, [], 'nothing was written by the cross-site requests')
  // Allowed: curl (no browser headers), the allowed origin, the gateway's own pages.
  t.equal((await get('/set/open%3Acurl/1', {}, open.url)).status, 200, 'curl: GET /set/open:curl/1 is 200')
  t.equal((await get('/set/open%3Aallowed/1', { origin: 'https://app.example', 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'cors' }, open.url)).status, 200, 'the allowed origin may write')
  t.equal((await get('/set/open%3Asame/1', { 'sec-fetch-site': 'same-origin' }, open.url)).status, 200, 'same-origin may write')
  t.equal((await get('/kv/canary%3Astring', img, open.url)).status, 200, 'a cross-site GET /kv read is still answered (nothing changes)')
})

t.test('finding 13 and 12: 401s are limited per client address; X-Forwarded-For only counts with TRUST_PROXY', async t => {
  const direct = await startInProcess(t, env.topo, { AUTH_TOKENS, AUTH_FAILURES_MAX: '5', AUTH_FAILURES_WINDOW_MS: '60000' })
  const proxied = await startInProcess(t, env.topo, { AUTH_TOKENS, AUTH_FAILURES_MAX: '5', AUTH_FAILURES_WINDOW_MS: '60000', TRUST_PROXY: '127.0.0.1' })
  const guess = async (base: string, i: number, xff?: string): Promise<number> =>
    (await get('/kv/canary%3Astring', { ...bearer(`sec-guess-${i}-xxxxxxxx`), ...(xff === undefined ? {} : { 'x-forwarded-for': xff }) }, base)).status
  // Without TRUST_PROXY a spoofed X-Forwarded-For changes nothing: one address, one budget.
  const first: number[] = []
  for (let i = 0; i < 40; i++) first.push(await guess(direct.url, i, `10.0.${i}.1`))
  t.ok(first.filter(s => s === 401).length <= 5, `at most 5 of 40 guesses get 401 (${first.join(' ')})`)
  t.ok(first.slice(-30).every(s => s === 429), 'the rest get 429')
  t.equal((await get('/', {}, direct.url, { method: 'POST', body: '["GET","k"]', headers: bearer('sec-guess-x-xxxxxxxx') })).status, 429, 'the command endpoint too')
  t.equal((await get('/get/k?_token=sec-guess-y-xxxxxxxx', {}, direct.url)).status, 429, '?_token= guesses too')
  t.equal((await get('/kv/canary%3Astring', bearer(TOKENS.admin), direct.url)).status, 429, 'while blocked, even the right token gets 429 (a right guess looks like a wrong one)')
  // With TRUST_PROXY the forwarded address is the client: another client is not blocked.
  for (let i = 0; i < 5; i++) t.equal(await guess(proxied.url, i, '10.0.0.1'), 401, `proxied client 10.0.0.1 guess ${i + 1}: 401`)
  t.equal(await guess(proxied.url, 5, '10.0.0.1'), 429, 'proxied client 10.0.0.1 guess 6: 429')
  t.equal(await guess(proxied.url, 6, '10.0.0.2'), 401, 'proxied client 10.0.0.2 is not blocked by 10.0.0.1\'s guesses')
})

t.test('the servers after the edge attacks', async t => {
  await checkServers(t, env, { what: 'after the edge attacks' })
})
