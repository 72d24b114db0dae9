/**
 * Subscription streams (/subscribe, /psubscribe) under attack: tokens without the `p` right, a
 * prefixed token reaching outside its prefix (channels and patterns), reserved channels in every
 * spelling, patterns built to match them (`*`, `_*`, `[_]*`...) while real reserved traffic flows
 * (the sentinels' hellos every 2 s, keyspace notifications switched on for the test), forged
 * events through line breaks, and Redis ACL as the second wall. The servers are checked after.
 */
import { Redis } from 'ioredis'
import t from 'tap'
import { startInProcess } from '../helpers/gateway.js'
import { numsubAll, sleep } from '../helpers/pubsub.js'
import { checkServers, AUTH_TOKENS, securityEnv, TOKENS } from '../helpers/security.js'
import { openSse, sse, type SseClient } from '../helpers/sse.js'

const PSESS = 'sec-pubsub-session-0005'
const PGLOB = 'sec-pubsub-glob-00006'
const env = await securityEnv(t, { env: { AUTH_TOKENS: `${AUTH_TOKENS},${PSESS}:p:session:,${PGLOB}:p:ses*` } })
const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

/** The status and `error` of a refused stream (an opened one is closed and reported as 200). */
async function refusal (path: string, headers: Record<string, string>, method: 'GET' | 'POST' = 'POST'): Promise<{ status: number; error: string }> {
  const r = await openSse(`${env.url}${path}`, headers, method)
  if ('waitFor' in r) { r.close(); return { status: 200, error: '' } }
  const body = r.json() as { error?: string }
  return { status: r.status, error: body.error ?? '' }
}

t.test('no p right, no stream: 401/403 in the Upstash shape, nothing subscribed', async (t) => {
  for (const [who, h] of [['reader (r)', bearer(TOKENS.reader)], ['session (rw:session:)', bearer(TOKENS.sess)]] as const) {
    for (const path of ['/subscribe/session:a', '/psubscribe/session:*']) {
      const r = await refusal(path, h)
      t.same([r.status, /^NOPERM this token has no pubsub right/.test(r.error)], [403, true], `${who} ${path}: 403 NOPERM (${r.error})`)
    }
  }
  const q = await refusal(`/subscribe/session:a?_token=${TOKENS.reader}`, {}, 'GET')
  t.equal(q.status, 403, 'the same with ?_token= (EventSource)')
  t.equal((await refusal('/subscribe/session:a', bearer('not-a-token-at-all'))).status, 401, 'unknown token: 401')
  t.equal((await refusal('/subscribe/session:a', {})).status, 401, 'no token: 401')
  const open = await startInProcess(t, env.topo, {})
  const o = await openSse(`${open.url}/subscribe/x`, {})
  t.equal('waitFor' in o ? 200 : o.status, 403, 'an open gateway (no token configured: r and w only) opens no stream')
  t.equal(await numsubAll(env.topo, 'session:a'), 0, 'no node has a subscriber of session:a')
  await checkServers(t, env)
})

t.test('reserved channels and patterns are refused in every spelling', async (t) => {
  const paths = [
    '/subscribe/__sentinel__:hello', '/subscribe/%5F%5Fsentinel__%3Ahello', '/subscribe/%5f_redis__:invalidate',
    '/subscribe/ok/__keyspace@0__:canary:string', '/psubscribe/__*', '/psubscribe/__sentinel__:*', '/psubscribe/ok*/__key*',
    '/subscribe/__skv:x', '/psubscribe/__'
  ]
  for (const path of paths) {
    for (const method of ['POST', 'GET'] as const) {
      const r = await refusal(path, bearer(TOKENS.admin), method)
      t.same([r.status, /^NOPERM .*reserved/.test(r.error)], [403, true], `${method} ${path}: 403 NOPERM (${r.error})`)
    }
  }
  t.equal(await numsubAll(env.topo, 'ok'), 0, 'a refused request subscribes nothing, not even its allowed names')
  await checkServers(t, env)
})

t.test('patterns that could match reserved channels never deliver their messages', async (t) => {
  // Real reserved traffic on every node: the sentinels' hellos (every 2 s), and keyspace notifications.
  const nodes = env.topo.redis.map(r => r.port)
  for (const port of nodes) await env.on(port, c => c.config('SET', 'notify-keyspace-events', 'KEA'))
  t.teardown(async () => { for (const port of nodes) await env.on(port, c => c.config('SET', 'notify-keyspace-events', '')) })
  const patterns = ['*', '_*', '[_]*', '?_*', '[^a]*', '*_*', '[\\_]_*', '\\__*']
  const streams: SseClient[] = []
  t.teardown(() => { for (const s of streams) s.close() })
  for (const p of patterns) {
    const s = await sse(`${env.url}/psubscribe/${encodeURIComponent(p)}`, bearer(TOKENS.admin))
    await s.waitFor(d => d.startsWith('psubscribe,'))
    streams.push(s)
  }
  // A key written through the gateway: keyspace events on the master and, replicated, on the replicas.
  const w = await fetch(`${env.url}/set/leak-probe/v`, { headers: bearer(TOKENS.admin) })
  t.equal(w.status, 200, 'a write that makes keyspace notifications')
  await env.master.publish('__test__:leak', 'must-not-arrive')
  await env.master.publish('_x', 'one underscore is not reserved')
  await sleep(2500) // at least one round of sentinel hellos
  // One subscriber connection delivers in order: once `*` has the marker, every stream was handed everything before it.
  await env.master.publish('zz:marker', 'end')
  await streams[0]!.waitFor(d => d.endsWith(',zz:marker,end'), 5000, 'the marker')
  await sleep(300)
  const leaked = streams.flatMap(s => s.data.filter(d => d.includes(',__') || d.includes('must-not-arrive')))
  t.same(leaked, [], 'no message of a reserved channel reached any stream')
  const all = streams[0]!.data
  t.ok(all.includes('pmessage,*,_x,one underscore is not reserved'), 'messages of other channels do arrive on *')
  t.ok(streams[1]!.data.includes('pmessage,_*,_x,one underscore is not reserved'), 'and on _*')
  await env.master.del('leak-probe')
  await checkServers(t, env)
})

t.test('a prefixed token subscribes only inside its prefix', async (t) => {
  for (const path of ['/subscribe/other', '/subscribe/session:a/other', '/subscribe/sessionX', '/psubscribe/*',
    '/psubscribe/sess*', '/psubscribe/session*', '/psubscribe/s[e]ssion:*', '/psubscribe/%3Fession:*', '/psubscribe/%5Cs*']) {
    const r = await refusal(path, bearer(PSESS))
    t.same([r.status, /^NOPERM this token may only use channels starting with "session:"/.test(r.error)], [403, true], `${path}: 403 (${r.error})`)
  }
  const g = await refusal('/psubscribe/ses*', bearer(PGLOB))
  t.same([g.status, /glob characters/.test(g.error)], [403, true], `a prefix holding glob characters confines no pattern (${g.error})`)
  t.equal(await numsubAll(env.topo, 'session:a'), 0, 'the refused mixed request subscribed nothing')
  const s = await sse(`${env.url}/psubscribe/session:*`, bearer(PSESS))
  const c = await sse(`${env.url}/subscribe/session:1?_token=${PSESS}`, {}, 'GET')
  await s.waitFor(d => d === 'psubscribe,session:*,1')
  await c.waitFor(d => d === 'subscribe,session:1,1')
  for (const ch of ['sessionX', 'other', 'session', 'Session:1', 'session:1']) await env.master.publish(ch, `to ${ch}`)
  await s.waitFor(d => d.includes('to session:1'))
  await c.waitFor(d => d.includes('to session:1'))
  await sleep(200)
  t.same(s.data, ['psubscribe,session:*,1', 'pmessage,session:*,session:1,to session:1'], 'the pattern stream got only its prefix')
  t.same(c.data, ['subscribe,session:1,1', 'message,session:1,to session:1'], 'the channel stream got only its channel')
  s.close()
  c.close()
  await checkServers(t, env)
})

t.test('line breaks in names and messages cannot forge events', async (t) => {
  const evil = 'session:a\ndata: message,other,forged\n'
  const s = await sse(`${env.url}/subscribe/${encodeURIComponent(evil)}`, bearer(PSESS))
  await s.waitFor(d => d.startsWith('subscribe,'))
  t.same(s.data, [`subscribe,${JSON.stringify(evil)},1`], 'the confirmation names the channel as a JSON string, on one line')
  const p = await sse(`${env.url}/psubscribe/session:*`, bearer(PSESS))
  await p.waitFor(d => d.startsWith('psubscribe,'))
  await env.master.publish(evil, 'x\r\ndata: message,other,forged2')
  await env.master.publish('session:end', 'end')
  await p.waitFor(d => d === 'pmessage,session:*,session:end,end')
  t.same(p.data, [
    'psubscribe,session:*,1',
    `pmessage,session:*,${JSON.stringify(evil)},${JSON.stringify('x\r\ndata: message,other,forged2')}`,
    'pmessage,session:*,session:end,end'
  ], 'one event per message, nothing forged')
  await s.waitFor(d => d.startsWith('message,'))
  t.same(s.data.slice(1), [`message,${JSON.stringify(evil)},${JSON.stringify('x\r\ndata: message,other,forged2')}`], 'the channel stream too')
  s.close()
  p.close()
})

t.test('Redis ACL is the second wall: the data user cannot subscribe to reserved channels or patterns', async (t) => {
  const acl = env.topo.acl
  t.ok(acl, 'the test topology has the ACL users')
  if (acl === undefined) return
  const c = new Redis({ host: '127.0.0.1', port: env.masterPort, username: acl.data.username, password: acl.data.password, lazyConnect: true, maxRetriesPerRequest: 0 })
  t.teardown(() => c.disconnect())
  await c.connect()
  await t.rejects(c.subscribe('__sentinel__:hello'), /NOPERM/, 'SUBSCRIBE __sentinel__:hello')
  await t.rejects(c.psubscribe('*'), /NOPERM/, 'PSUBSCRIBE * (Redis compares patterns literally)')
  await t.rejects(c.psubscribe('__*'), /NOPERM/, 'PSUBSCRIBE __*')
  t.equal(await c.psubscribe('[^_]*'), 1, 'only its own channel patterns: what the gateway subscribes to match patterns itself')
})

t.test('a page on another origin cannot open a stream with POST, nor read one without CORS', async (t) => {
  const foreign = { 'sec-fetch-site': 'cross-site', origin: 'http://evil.example' }
  const post = await refusal('/subscribe/session:a', { ...bearer(PSESS), ...foreign })
  t.equal(post.status, 403, `POST from a foreign page: 403 (${post.error})`)
  const r = await sse(`${env.url}/subscribe/session:a?_token=${PSESS}`, foreign, 'GET')
  t.equal(r.headers['access-control-allow-origin'], undefined, 'GET: no CORS header (CORS_ORIGINS unset), the browser hides the stream')
  r.close()
  await checkServers(t, env)
})
