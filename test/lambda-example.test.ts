/**
 * examples/lambda/handler.mjs (the plain-JS session / page-view Lambda a user deploys) invoked
 * locally against a real gateway in front of a real Sentinel topology, with a bearer token.
 * Outcomes are checked on the Redis master itself: stored JSON, TTL, no lost increments under
 * concurrent invocations, deletes; and every failure comes back as a clear error object.
 */
import t from 'tap'
import { startInProcess } from './helpers/gateway.js'
import { freePorts } from './helpers/topology-procs.js'
import { topologyFor } from './helpers/topology.js'

interface LambdaReply { statusCode: number; headers: Record<string, string>; body: string }
interface Session { id: string; views: number; firstSeen: string; lastSeen: string; ttlSeconds: number; attempts: number }
interface ErrorReply { error: { code: string; message: string; gatewayStatus?: number; gatewayError?: { code?: string } } }
type Handler = (event?: Record<string, unknown>) => Promise<LambdaReply>

/** The example, whether this file runs from test/ (tap) or dist/test/. */
function examplePath (): URL {
  const here = new URL('../', import.meta.url)
  const root = here.href.endsWith('/dist/') ? new URL('../', here) : here
  return new URL('examples/lambda/handler.mjs', root)
}
const { handler } = await import(examplePath().href) as { handler: Handler }

const TOKEN = 'lambda-secret-token'
const READ_ONLY = 'read-only-token'
const TTL = 600
const topo = await topologyFor(t)
const gw = await startInProcess(t, topo, { AUTH_TOKENS: `${TOKEN}:rw:session:,${READ_ONLY}:r` })
/** Unique per run, so sessions never collide with another file's or an earlier run's. */
const S = `t${process.pid}-${Date.now()}-`

/** Sets the function's environment for one subtest (restored on teardown). */
function env (t: { teardown(fn: () => unknown): void }, vars: Record<string, string | undefined>): void {
  const saved = { ...process.env }
  t.teardown(() => { process.env = saved })
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined) delete process.env[k]
    else process.env[k] = v
  }
}
const deployed = { GATEWAY_URL: gw.url, GATEWAY_TOKEN: TOKEN, SESSION_TTL_SECONDS: String(TTL) }

/** An API Gateway HTTP API (v2) event, as the function gets it behind an HTTP API or a function URL. */
const httpEvent = (method: string, session?: string): Record<string, unknown> => ({
  version: '2.0',
  rawPath: '/',
  rawQueryString: session === undefined ? '' : `session=${session}`,
  ...(session === undefined ? {} : { queryStringParameters: { session } }),
  headers: {},
  requestContext: { http: { method, path: '/', sourceIp: '203.0.113.7' }, requestId: 'r1' },
  isBase64Encoded: false
})

const json = <T>(r: LambdaReply): T => JSON.parse(r.body) as T

async function onMaster<T> (fn: (c: ReturnType<typeof topo.client>) => Promise<T>): Promise<T> {
  const c = topo.client((await topo.master()).port)
  try { return await fn(c) } finally { await c.quit() }
}

t.test('a new session is created, stored as JSON with the TTL, and counted on each view', async t => {
  env(t, deployed)
  const first = await handler(httpEvent('GET'))
  t.equal(first.statusCode, 200)
  t.match(first.headers['content-type'], /^application\/json/)
  const s1 = json<Session>(first)
  t.match(s1.id, /^[0-9a-f-]{36}$/, 'without ?session= a new id is made')
  t.equal(s1.views, 1)
  t.equal(s1.ttlSeconds, TTL)

  const stored = await onMaster(async c => ({ value: await c.get(`session:${s1.id}`), ttl: await c.ttl(`session:${s1.id}`) }))
  t.same(JSON.parse(stored.value ?? 'null'), { id: s1.id, views: 1, firstSeen: s1.firstSeen, lastSeen: s1.lastSeen }, 'the master holds the session JSON')
  t.ok(stored.ttl > 0 && stored.ttl <= TTL, `the key expires within SESSION_TTL_SECONDS (ttl ${stored.ttl})`)

  for (const n of [2, 3]) {
    const again = json<Session>(await handler(httpEvent('POST', s1.id)))
    t.equal(again.views, n, `view ${n} is counted`)
    t.equal(again.firstSeen, s1.firstSeen, 'firstSeen is kept')
  }
  const direct = json<Session>(await handler({ session: s1.id }))
  t.equal(direct.views, 4, 'a direct invocation ({ session }) counts too')

  const viaGateway = await fetch(`${gw.url}/kv/${encodeURIComponent(`session:${s1.id}`)}?consistency=strong`, {
    headers: { authorization: `Bearer ${READ_ONLY}` }
  })
  t.equal(viaGateway.status, 200)
  t.equal((JSON.parse(await viaGateway.text()) as Session).views, 4, 'the gateway answers the stored count')
})

t.test('concurrent views of one session lose no increment (If-Match, retried on 412)', async t => {
  env(t, deployed)
  const id = `${S}busy`
  const N = 12
  const replies = await Promise.all(Array.from({ length: N }, async () => await handler(httpEvent('GET', id))))
  t.same(replies.map(r => r.statusCode), Array(N).fill(200), 'every invocation succeeded')
  const views = replies.map(r => json<Session>(r).views).sort((a, b) => a - b)
  t.same(views, Array.from({ length: N }, (_, i) => i + 1), 'each invocation saw a distinct count 1..N')
  t.ok(replies.some(r => json<Session>(r).attempts > 1), 'some invocations had to retry after a 412')
  const stored = await onMaster(async c => await c.get(`session:${id}`))
  t.equal((JSON.parse(stored ?? '{}') as Session).views, N, `the master holds views = ${N}`)
})

t.test('DELETE forgets the session', async t => {
  env(t, deployed)
  const id = `${S}bye`
  await handler(httpEvent('GET', id))
  t.not(await onMaster(async c => await c.exists(`session:${id}`)), 0, 'stored first')
  const del = await handler(httpEvent('DELETE', id))
  t.equal(del.statusCode, 200)
  t.same(json(del), { id, deleted: true })
  t.equal(await onMaster(async c => await c.exists(`session:${id}`)), 0, 'gone from the master')
  t.same(json(await handler(httpEvent('DELETE', id))), { id, deleted: false }, 'a second DELETE: deleted false (the gateway said 404)')
  t.equal(json<Session>(await handler(httpEvent('GET', id))).views, 1, 'the next view starts a new session')
})

t.test('failures come back as clear error objects', async t => {
  const id = `${S}err`
  await t.test('no token: the gateway\'s 401 is reported', async t => {
    env(t, { ...deployed, GATEWAY_TOKEN: undefined })
    const r = await handler(httpEvent('GET', id))
    t.equal(r.statusCode, 502)
    t.match(json<ErrorReply>(r), { error: { code: 'GATEWAY_ERROR', gatewayStatus: 401, gatewayError: { code: 'GW_ERR_UNAUTHORIZED' } } })
  })
  await t.test('a read-only token: the gateway\'s 403 is reported, nothing is written', async t => {
    env(t, { ...deployed, GATEWAY_TOKEN: READ_ONLY })
    const r = await handler(httpEvent('GET', id))
    t.equal(r.statusCode, 502)
    t.match(json<ErrorReply>(r), { error: { code: 'GATEWAY_ERROR', gatewayStatus: 403, gatewayError: { code: 'GW_ERR_FORBIDDEN' } } })
    t.equal(await onMaster(async c => await c.exists(`session:${id}`)), 0)
  })
  await t.test('nothing listening at GATEWAY_URL', async t => {
    const [port] = await freePorts(1)
    env(t, { ...deployed, GATEWAY_URL: `http://127.0.0.1:${port}` })
    const r = await handler(httpEvent('GET', id))
    t.equal(r.statusCode, 502)
    t.match(json<ErrorReply>(r), { error: { code: 'GATEWAY_UNREACHABLE', message: /ECONNREFUSED|fetch failed/ } })
  })
  await t.test('GATEWAY_URL unset', async t => {
    env(t, { ...deployed, GATEWAY_URL: undefined })
    const r = await handler(httpEvent('GET', id))
    t.equal(r.statusCode, 500)
    t.match(json<ErrorReply>(r), { error: { code: 'CONFIG_INVALID', message: /GATEWAY_URL/ } })
  })
  await t.test('a bad session id', async t => {
    env(t, deployed)
    const r = await handler(httpEvent('GET', 'no/slashes'))
    t.equal(r.statusCode, 400)
    t.match(json<ErrorReply>(r), { error: { code: 'BAD_SESSION_ID' } })
  })
  await t.test('a key that does not hold a session', async t => {
    env(t, deployed)
    await onMaster(async c => await c.set(`session:${id}`, 'not json'))
    const r = await handler(httpEvent('GET', id))
    t.equal(r.statusCode, 502)
    t.match(json<ErrorReply>(r), { error: { code: 'SESSION_CORRUPT' } })
    t.equal(await onMaster(async c => await c.get(`session:${id}`)), 'not json', 'left untouched')
  })
})
