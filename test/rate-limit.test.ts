/**
 * Rate limiting across gateway processes, against one real Sentinel topology: two gateway
 * processes share one budget per token (counters on the Redis master), another token has its own
 * budget, `?_token=` and the Authorization header share the token's budget (finding 12), anonymous
 * clients are limited per client IP (127.0.0.1 vs 127.0.0.2), 429 answers carry Retry-After,
 * RateLimit-* and the error shape. The counters (finding 8) live under the reserved prefix
 * `__skv:ratelimit:`, named by the token's name, never by token material; what an attacker could
 * plant in one (a non-integer, another type, a huge count without TTL) neither makes the limiter
 * fail open nor locks the token out past one window. The limiter fails open only when its store
 * is unreachable:
 *  - store unreachable: the master is SIGKILLed and 12 requests (> RATE_LIMIT_MAX) with a fresh
 *    token go out at once: none is a 429 or a 500 (200 from a replica, or 503 from the KV path
 *    during the failover); then the node is restarted, the topology converges and the limiter
 *    counts again on the new master.
 */
import { createHash, randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { startProcess, type GatewayProcess } from './helpers/gateway.js'
import { httpRequest, leakIn } from './helpers/edge-http.js'
import { errorSummary, KvClient, pollUntil, type Answer } from './helpers/kv-client.js'
import { topologyFor } from './helpers/topology.js'

const MAX = 10
// Long enough that a sequence of requests never straddles two windows, even on a loaded machine.
const WINDOW_MS = 30_000
const NAMESPACE = '__skv:ratelimit:'
/** Load shedding off: on a loaded CI machine a CPU-starved test process would answer 503 (overloaded), which is not what this file tests. */
const NO_SHEDDING = { EVENT_LOOP_MAX_DELAY_MS: '0' }
/** A gateway process starts in about 1.5 s; allow for a heavily loaded machine. */
const READY_MS = 40_000
const topo = await topologyFor(t)
const P = `rl:${process.pid}:${Date.now()}:`
const tok = (name: string): string => `${name}-${randomBytes(10).toString('hex')}`
const T = { a: tok('alpha'), b: tok('bravo'), broken: tok('broken'), outage: tok('outage'), after: tok('after'), probe: tok('probe'), query: tok('query'), locked: tok('locked') }
/** The names the gateway gives AUTH_TOKENS entries, in order: token-1, token-2... */
const NAME = Object.fromEntries(Object.keys(T).map((k, i) => [k, `token-${i + 1}`])) as Record<keyof typeof T, string>
const limits = { ...NO_SHEDDING, RATE_LIMIT_MAX: String(MAX), RATE_LIMIT_WINDOW_MS: String(WINDOW_MS) }
const env = { ...limits, LOG_LEVEL: 'warn', AUTH_TOKENS: Object.values(T).map(x => `${x}:rw`).join(',') }
const [gwA, gwB] = await Promise.all([startProcess(t, topo, env, READY_MS), startProcess(t, topo, env, READY_MS)]) as [GatewayProcess, GatewayProcess]
const A = new KvClient(gwA.url)
const B = new KvClient(gwB.url)
const KEY = `${P}seed`
t.equal((await A.put(KEY, 'seed', { headers: { authorization: `Bearer ${T.probe}` } })).status, 201, 'seed key written')
const internalPorts = [...topo.redis, ...topo.sentinels].map(n => n.port)

const get = async (c: KvClient, token: string): Promise<Answer> => await c.get(KEY, '', { authorization: `Bearer ${token}` })
const num = (r: Answer, h: string): number => Number(r.headers.get(h) ?? NaN)

/** Asserts a 429 of the gateway's shape with its headers. */
function assert429 (t: Test, r: Answer, what: string): void {
  t.same(errorSummary(r), { status: 429, code: 'GW_ERR_RATE_LIMITED', shape: 'gateway' }, `${what}: 429 GW_ERR_RATE_LIMITED in the error shape`)
  const retryAfter = num(r, 'retry-after')
  t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= WINDOW_MS / 1000, `${what}: Retry-After in 1..${WINDOW_MS / 1000} s (got ${r.headers.get('retry-after')})`)
  t.equal(r.headers.get('ratelimit-limit'), String(MAX), `${what}: RateLimit-Limit`)
  t.equal(r.headers.get('ratelimit-remaining'), '0', `${what}: RateLimit-Remaining 0`)
  t.ok(num(r, 'ratelimit-reset') >= 1 && num(r, 'ratelimit-reset') <= WINDOW_MS / 1000, `${what}: RateLimit-Reset in the window`)
  t.equal(leakIn(r.text, internalPorts), undefined, `${what}: no internal address or stack trace`)
}

t.test('one token, two gateway processes: one shared budget', async t => {
  const answers: Answer[] = []
  for (let i = 0; i < 15; i++) answers.push(await get(i % 2 === 0 ? A : B, T.a))
  const statuses = answers.map(r => r.status)
  t.same(statuses, [...Array(MAX).fill(200), ...Array(15 - MAX).fill(429)], `10 served then 429, alternating A/B (got ${statuses.join(',')})`)
  answers.slice(0, MAX).forEach((r, i) => {
    t.equal(r.headers.get('ratelimit-limit'), String(MAX), `#${i + 1}: RateLimit-Limit`)
    t.equal(r.headers.get('ratelimit-remaining'), String(MAX - 1 - i), `#${i + 1}: RateLimit-Remaining counts down across both processes`)
  })
  answers.slice(MAX).forEach((r, i) => assert429(t, r, `#${MAX + 1 + i} (${(MAX + i) % 2 === 0 ? 'A' : 'B'})`))
  // The same token spelled differently is still the same token.
  for (const [what, auth] of [['lower-case scheme', `bearer ${T.a}`], ['upper-case scheme', `BEARER ${T.a}`], ['two spaces', `Bearer  ${T.a}`]] as const) {
    const r = await A.get(KEY, '', { authorization: auth })
    t.equal(r.status, 429, `${what} ("${auth.replace(T.a, '<token>')}") shares the token's budget (got ${r.status})`)
  }
})

t.test('another token has its own budget', async t => {
  const statuses: number[] = []
  for (let i = 0; i < MAX + 2; i++) statuses.push((await get(i % 2 === 0 ? B : A, T.b)).status)
  t.same(statuses, [...Array(MAX).fill(200), 429, 429], `token b: 10 served then 429 (got ${statuses.join(',')})`)
  t.equal((await get(A, T.a)).status, 429, 'token a is still limited')
})

t.test('anonymous clients (no tokens configured): limited per client IP', async t => {
  const open = await startProcess(t, topo, { ...limits, LOG_LEVEL: 'warn' }, READY_MS)
  const url = `${open.url}/kv/${encodeURIComponent(KEY)}`
  const from = async (ip: string, headers: Record<string, string> = {}): Promise<number> => (await httpRequest(url, { localAddress: ip, headers })).status
  const one: number[] = []
  for (let i = 0; i < MAX + 2; i++) one.push(await from('127.0.0.1'))
  t.same(one, [...Array(MAX).fill(200), 429, 429], `127.0.0.1: 10 served then 429 (got ${one.join(',')})`)
  const r429 = await httpRequest(url, { localAddress: '127.0.0.1' })
  t.equal((r429.json as { error?: { code?: string } } | undefined)?.error?.code, 'GW_ERR_RATE_LIMITED')
  t.ok(Number(r429.headers['retry-after']) >= 1, 'Retry-After on the anonymous 429')
  t.equal(await from('127.0.0.2'), 200, '127.0.0.2 has its own budget')
  t.equal(await from('127.0.0.1', { 'x-forwarded-for': '10.9.8.7' }), 429, 'X-Forwarded-For does not buy a new budget')
  // The gateway is open: a made-up Authorization header names no token, the client is still anonymous.
  const madeUp = await from('127.0.0.1', { authorization: `Bearer made-up-${randomBytes(6).toString('hex')}` })
  t.equal(madeUp, 429, `a made-up bearer token on an open gateway does not buy a new budget (got ${madeUp})`)
  const lines = open.output().split('\n').filter(l => l.includes('"level":50') || l.includes('"level":60'))
  t.same(lines, [], 'no error logged')
})

t.test('the counters: under the reserved prefix, named by the token\'s name, no token material', async t => {
  const master = topo.client((await topo.masterProc()).port)
  t.teardown(async () => { await master.quit() })
  const keys = (await master.scan('0', 'MATCH', '*ratelimit*', 'COUNT', 100_000))[1]
  t.ok(keys.includes(`${NAMESPACE}token:${NAME.a}`), `token a counts under ${NAMESPACE}token:${NAME.a} (keys: ${keys.join(', ')})`)
  t.ok(keys.every(k => k.startsWith(NAMESPACE)), 'every counter is under the reserved prefix')
  for (const token of Object.values(T)) {
    const digest = createHash('sha256').update(token).digest('hex')
    const material = [token, digest.slice(0, 24), digest.slice(0, 12), token.slice(-20)]
    t.notOk(keys.some(k => material.some(m => k.includes(m))), `no counter name holds the token or its hash (${token.slice(0, 6)}...)`)
  }
  const ttl = await master.pttl(`${NAMESPACE}token:${NAME.a}`)
  t.ok(ttl > 0 && ttl <= WINDOW_MS, `the counter expires with the window (PTTL ${ttl})`)
})

t.test('?_token= and the Authorization header share the token\'s budget', async t => {
  const statuses: number[] = []
  for (let i = 0; i < MAX + 2; i++) {
    const r = i % 2 === 0
      ? await A.request('GET', `/get/${encodeURIComponent(KEY)}?_token=${T.query}`)
      : await B.request('GET', `/get/${encodeURIComponent(KEY)}`, { headers: { authorization: `Bearer ${T.query}` } })
    statuses.push(r.status)
  }
  t.same(statuses, [...Array(MAX).fill(200), 429, 429], `query and header alternating over both processes: 10 served then 429 (got ${statuses.join(',')})`)
  t.equal((await get(A, T.query)).status, 429, 'the /kv route with the header is limited too')
})

t.test('a planted counter cannot make the limiter fail open, nor lock the token out', async t => {
  const master = topo.client((await topo.masterProc()).port)
  t.teardown(async () => { await master.quit() })
  const key = `${NAMESPACE}token:${NAME.broken}`
  t.equal((await get(A, T.broken)).status, 200, 'a first request creates the token\'s counter')
  t.equal(await master.get(key), '1', `it counts 1 under ${key}`)
  const plants: Array<[string, () => Promise<unknown>]> = [
    ['a non-integer', async () => await master.set(key, 'not a number')],
    ['a float', async () => await master.set(key, '1.5', 'PX', 60_000)],
    ['a hash', async () => { await master.del(key); await master.hset(key, 'not', 'a counter') }],
    ['an integer at the edge of overflow', async () => await master.set(key, '9223372036854775807')]
  ]
  for (const [what, plant] of plants) {
    await plant()
    const statuses: number[] = []
    for (let i = 0; i < MAX + 3; i++) statuses.push((await get(i % 2 === 0 ? A : B, T.broken)).status)
    t.same(statuses, [...Array(MAX).fill(200), 429, 429, 429], `${what} in the counter: a new window, 10 served then 429, not fail open (got ${statuses.join(',')})`)
    t.equal(await master.type(key), 'string', `${what}: the counter is a counter again`)
    await master.del(key)
  }
  // Lock-out attempt: a count far over the limit, without TTL (it would refuse the token forever).
  const locked = `${NAMESPACE}token:${NAME.locked}`
  await master.set(locked, '1000000')
  const r = await get(A, T.locked)
  assert429(t, r, 'a planted count over the limit')
  const ttl = await master.pttl(locked)
  t.ok(ttl > 0 && ttl <= WINDOW_MS, `the planted counter now ends with the window (PTTL ${ttl} ms, was none)`)
  await master.set(locked, '1000000', 'PX', 10 * WINDOW_MS)
  t.equal((await get(B, T.locked)).status, 429, 'a TTL longer than the window...')
  const clamped = await master.pttl(locked)
  t.ok(clamped > 0 && clamped <= WINDOW_MS, `...is cut back to the window (PTTL ${clamped} ms)`)
})

t.test('fail open while the master is down, then counts again on the new master', async t => {
  const old = await topo.masterProc()
  await topo.kill(old)
  const started = Date.now()
  // More than MAX at once, all reaching the limiter while its store is gone.
  const answers = await Promise.all(Array.from({ length: MAX + 2 }, async (_, i) => await get(i % 2 === 0 ? A : B, T.outage)))
  const statuses = answers.map(r => r.status)
  t.comment(`statuses during the outage (${Date.now() - started} ms): ${statuses.join(',')}`)
  t.notOk(statuses.includes(500), 'no 500')
  t.notOk(statuses.includes(429), `no 429: the limiter failed open (${MAX + 2} requests > RATE_LIMIT_MAX ${MAX})`)
  t.ok(statuses.every(s => s === 200 || s === 503), `each request is 200 (replica) or 503 (KV path during failover): ${statuses.join(',')}`)
  for (const r of answers.filter(a => a.status >= 400)) {
    t.same(errorSummary(r).shape, 'gateway', `${r.status}: the error shape`)
    t.equal(leakIn(r.text, internalPorts), undefined, `${r.status}: no internal address or stack trace`)
  }

  // Restart the old master only once the sentinels have promoted a replica: restarted earlier it
  // would come back as an empty master (no persistence) and the replicas would resync from it.
  const promoted = await pollUntil(30_000, 100, async () => {
    const m = await topo.master()
    return m.port !== old.port ? m.port : undefined
  })
  t.ok(promoted.value, `the sentinels promoted a replica (:${promoted.value} after ${promoted.ms} ms)`)
  await topo.restart(old)
  await topo.waitConverged(40_000)
  t.not((await topo.masterProc()).port, old.port, 'the restarted node is a replica')
  // The limiter's own connection follows the sentinels to the new master: counting resumes.
  for (const [name, gw, proc] of [['A', A, gwA], ['B', B, gwB]] as const) {
    const counted = await pollUntil(20_000, 200, async () => {
      // 200 with a count, or 429 (remaining 0): either way the limiter counted. While it still fails
      // open it answers RateLimit-Remaining = MAX (nothing counted): not yet.
      const r = await gw.get(KEY, '', { authorization: `Bearer ${T.probe}` })
      const left = r.headers.get('ratelimit-remaining') ?? ''
      return /^\d+$/.test(left) && Number(left) < MAX ? true : undefined
    })
    const why = counted.value === true ? '' : `; its warnings: ${proc.output().split('\n').filter(l => l.includes('rate limiter')).slice(-3).join(' | ')}`
    t.ok(counted.value, `${name}: the limiter counts again after the failover (${counted.ms} ms${why})`)
  }
  const after: number[] = []
  const remaining: Array<string | null> = []
  for (let i = 0; i < MAX + 2; i++) {
    const r = await get(i % 2 === 0 ? A : B, T.after)
    after.push(r.status)
    remaining.push(r.headers.get('ratelimit-remaining'))
  }
  t.same(after, [...Array(MAX).fill(200), 429, 429], `after the failover: 10 served then 429 across both processes (got ${after.join(',')}; RateLimit-Remaining ${remaining.join(',')})`)
  const warned = [gwA, gwB].map(g => g.output().split('\n').filter(l => l.includes('rate limiter cannot reach Redis')).length)
  t.ok(warned.some(n => n >= 1), `the outage was logged as a warning (lines per process: ${warned.join(',')})`)
  const allowed = Math.ceil((Date.now() - started) / 10_000) + 1
  t.ok(warned.every(n => n <= allowed), `at most one warning per 10 s per process (lines: ${warned.join(',')}, allowed ${allowed})`)
})
