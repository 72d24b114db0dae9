/**
 * The Upstash REST compatible endpoint with the real @upstash/redis SDK (global fetch) against an
 * in-process gateway in front of a real Sentinel topology (1 master, 2 replicas, 3 sentinels):
 * data types, pipelines, transactions, tokens (read-only, prefix), deny list, reads served by
 * replicas, read-your-writes, and the raw protocol (path form, _token, content types, encodings,
 * error shapes) next to the gateway's own routes.
 */
import { Redis } from '@upstash/redis'
import t from 'tap'
import { startInProcess, untilSettled } from './helpers/gateway.js'
import { commandCalls } from './helpers/kv-client.js'
import { topologyFor } from './helpers/topology.js'

const ADMIN = 'up-admin-t0ken'
const READER = 'up-reader-t0ken'
const TENANT = 'up-tenant-t0ken'
const topo = await topologyFor(t)
const gw = await startInProcess(t, topo, {
  AUTH_TOKENS: `${ADMIN}:rwxo,${READER}:r,${TENANT}:rw:tenant:`,
  UPSTASH_MAX_COMMANDS: '50'
})
const P = `up:${process.pid}:${Date.now()}:`

/** An SDK client as an application would build it: only the URL and the token differ from Upstash. */
const sdk = (token: string, extra: Partial<ConstructorParameters<typeof Redis>[0]> = {}): Redis =>
  new Redis({ url: gw.url, token, enableTelemetry: false, retry: false, ...extra })
const redis = sdk(ADMIN)

interface Raw { status: number; headers: Headers; json: unknown; text: string }
async function raw (method: string, path: string, init: { body?: string | Uint8Array<ArrayBuffer>; headers?: Record<string, string> } = {}): Promise<Raw> {
  const r = await fetch(`${gw.url}${path}`, { method, headers: init.headers ?? {}, ...(init.body === undefined ? {} : { body: init.body }), signal: AbortSignal.timeout(15_000) })
  const text = await r.text()
  let json: unknown
  try { json = JSON.parse(text) } catch { json = undefined }
  return { status: r.status, headers: r.headers, json, text }
}
const auth = { authorization: `Bearer ${ADMIN}` }

async function onNode<T> (port: number, fn: (c: ReturnType<typeof topo.client>) => Promise<T>): Promise<T> {
  const c = topo.client(port)
  try {
    return await fn(c)
  } finally {
    await c.quit()
  }
}

// The gateway is usable once it has confirmed the master and seen both replicas healthy.
await untilSettled(gw.app)

t.test('strings: SET with EX and NX, GET, INCR, MGET, GETDEL, JSON values', async t => {
  t.equal(await redis.set(`${P}s1`, 'hello'), 'OK')
  t.equal(await redis.get(`${P}s1`), 'hello')
  t.equal(await redis.set(`${P}s1`, 'other', { nx: true }), null, 'SET NX on an existing key answers null')
  t.equal(await redis.get(`${P}s1`), 'hello', 'and leaves the value')
  t.equal(await redis.set(`${P}ex`, 'soon gone', { ex: 100 }), 'OK')
  const ttl = await redis.ttl(`${P}ex`)
  t.ok(ttl > 90 && ttl <= 100, `TTL after SET EX 100 is ${ttl}`)
  t.equal(await redis.get(`${P}missing`), null, 'a missing key is null')
  t.equal(await redis.incr(`${P}n`), 1)
  t.equal(await redis.incrby(`${P}n`, 41), 42)
  t.same(await redis.mget(`${P}s1`, `${P}missing`, `${P}n`), ['hello', null, 42], 'MGET (numbers deserialized by the SDK)')
  t.equal(await redis.set(`${P}unicode`, 'héllo ✓ 日本'), 'OK')
  t.equal(await redis.get(`${P}unicode`), 'héllo ✓ 日本', 'UTF-8 round trip (base64 on the wire)')
  await redis.set(`${P}json`, { cart: [1, 2], name: 'x' })
  t.same(await redis.get(`${P}json`), { cart: [1, 2], name: 'x' }, 'the SDK\'s JSON values round trip')
  t.equal(await redis.getdel(`${P}s1`), 'hello')
  t.equal(await redis.exists(`${P}s1`), 0)
  await redis.set(`${P}ok`, 'OK')
  t.equal(await redis.get(`${P}ok`), 'OK', 'a stored "OK" reads back as "OK"')
})

t.test('hashes, lists, sets, sorted sets, expiry', async t => {
  t.equal(await redis.hset(`${P}h`, { name: 'Alice', visits: 3 }), 2)
  t.equal(await redis.hget(`${P}h`, 'name'), 'Alice')
  t.same(await redis.hgetall(`${P}h`), { name: 'Alice', visits: 3 }, 'HGETALL as an object')
  t.equal(await redis.hincrby(`${P}h`, 'visits', 2), 5)
  t.same(await redis.hkeys(`${P}h`), ['name', 'visits'])

  t.equal(await redis.rpush(`${P}l`, 'a', 'b'), 2)
  t.equal(await redis.lpush(`${P}l`, 'z'), 3)
  t.same(await redis.lrange(`${P}l`, 0, -1), ['z', 'a', 'b'])
  t.equal(await redis.lpop(`${P}l`), 'z')
  t.equal(await redis.llen(`${P}l`), 2)

  t.equal(await redis.sadd(`${P}set`, 'x', 'y', 'x'), 2)
  t.same((await redis.smembers(`${P}set`)).sort(), ['x', 'y'])
  t.equal(await redis.sismember(`${P}set`, 'y'), 1)
  t.equal(await redis.scard(`${P}set`), 2)

  t.equal(await redis.zadd(`${P}z`, { score: 1, member: 'one' }, { score: 3, member: 'three' }), 2)
  t.equal(await redis.zincrby(`${P}z`, 1, 'one'), 2)
  t.equal(await redis.zscore(`${P}z`, 'one'), 2)
  t.same(await redis.zrange(`${P}z`, 0, -1, { withScores: true }), ['one', 2, 'three', 3])
  t.equal(await redis.zrank(`${P}z`, 'three'), 1)

  t.equal(await redis.expire(`${P}h`, 50), 1)
  const ttl = await redis.ttl(`${P}h`)
  t.ok(ttl > 40 && ttl <= 50, `TTL after EXPIRE 50 is ${ttl}`)
  t.equal(await redis.persist(`${P}h`), 1)
  t.equal(await redis.ttl(`${P}h`), -1)
  t.equal(await redis.type(`${P}z`), 'zset')
  await t.rejects(redis.incr(`${P}h`), /WRONGTYPE/, 'a Redis error reaches the SDK as an UpstashError with the Redis message')
})

t.test('pipelines (explicit and auto-pipelined) and transactions', async t => {
  const p = redis.pipeline()
  p.set(`${P}p1`, 'v1')
  p.incr(`${P}pn`)
  p.get(`${P}p1`)
  p.lpush(`${P}pl`, 'a', 'b')
  t.same(await p.exec(), ['OK', 1, 'v1', 2])

  const kept = await redis.pipeline().set(`${P}p2`, 'x').incr(`${P}p2`).get(`${P}p2`).exec({ keepErrors: true })
  t.equal(kept[0]?.result, 'OK')
  t.match(kept[1]?.error, /not an integer/, 'one failing command of a pipeline answers its own error')
  t.equal(kept[2]?.result, 'x', 'and the others still run')

  // Auto-pipelining (the SDK default): concurrent calls share one HTTP request.
  const [a, b, c] = await Promise.all([redis.get(`${P}p1`), redis.get(`${P}p2`), redis.exists(`${P}p1`)])
  t.same([a, b, c], ['v1', 'x', 1])

  const m = redis.multi()
  m.set(`${P}m1`, '10')
  m.incrby(`${P}m1`, 5)
  m.get(`${P}m1`)
  m.hset(`${P}mh`, { f: 'v' })
  t.same(await m.exec(), ['OK', 15, 15, 1], 'MULTI/EXEC answers every command')

  const failing = await raw('POST', '/multi-exec', { headers: auth, body: JSON.stringify([['SET', `${P}m2`, 'a'], ['SET', `${P}m2`]]) })
  t.equal(failing.status, 400, 'a command with the wrong number of arguments aborts the transaction: 400')
  t.match(failing.json, { error: /wrong number of arguments/ })
  t.equal(await redis.exists(`${P}m2`), 0, 'nothing of it ran')

  const runtime = await raw('POST', '/multi-exec', { headers: auth, body: JSON.stringify([['SET', `${P}m3`, 'a'], ['INCR', `${P}m3`], ['GET', `${P}m3`]]) })
  t.equal(runtime.status, 200)
  t.match(runtime.json, [{ result: 'OK' }, { error: /not an integer/ }, { result: 'a' }], 'a runtime error answers in its place; the rest ran')
})

t.test('safety: allowlist, read-only token, prefix-scoped token', async t => {
  await t.rejects(redis.flushall(), /FLUSHALL.*not available.*@dangerous/, 'FLUSHALL is refused (@dangerous)')
  await t.rejects(redis.keys('*'), /KEYS.*not available/, 'KEYS is refused (use SCAN)')
  const denied = await raw('POST', '/', { headers: auth, body: '["CONFIG","GET","*"]' })
  t.equal(denied.status, 400)
  t.match(denied.json, { error: /CONFIG GET.*not available.*@admin/ })
  for (const cmd of [['SELECT', '1'], ['MULTI'], ['SUBSCRIBE', 'c'], ['CLIENT', 'LIST'], ['WAIT', '1', '0'], ['BLPOP', 'k', '1'], ['XREAD', 'BLOCK', '100', 'STREAMS', 's', '$']]) {
    const r = await raw('POST', '/', { headers: auth, body: JSON.stringify(cmd) })
    t.equal(r.status, 400, `${cmd.join(' ')}: 400`)
    t.match(r.json, { error: /not available through this gateway/ }, `${cmd[0]} is always refused`)
  }
  const xread = await raw('POST', '/', { headers: auth, body: JSON.stringify(['XREAD', 'COUNT', '1', 'STREAMS', `${P}stream`, '0']) })
  t.equal(xread.status, 200, 'XREAD without BLOCK is allowed')
  const unknown = await raw('POST', '/', { headers: auth, body: '["NOSUCHCMD","x"]' })
  t.equal(unknown.status, 400)
  t.same(unknown.json, { error: "ERR unknown command 'NOSUCHCMD'" }, 'an unknown command: the Upstash error shape')

  const reader = sdk(READER)
  t.equal(await reader.get(`${P}p1`), 'v1', 'a read-only token reads')
  t.same(await reader.mget(`${P}p1`, `${P}p2`), ['v1', 'x'])
  await t.rejects(reader.set(`${P}ro`, 'x'), /NOPERM.*no write right/, 'a read-only token cannot SET')
  await t.rejects(reader.incr(`${P}ro`), /NOPERM/, 'nor INCR')
  await t.rejects(reader.eval('return 1', [], []), /NOPERM/, 'nor EVAL')
  const roWrite = await raw('POST', '/', { headers: { authorization: `Bearer ${READER}` }, body: JSON.stringify(['DEL', `${P}p1`]) })
  t.equal(roWrite.status, 403, 'NOPERM is a 403')
  t.equal(await redis.get(`${P}p1`), 'v1', 'nothing was deleted')
  t.equal(await reader.ping(), 'PONG', 'PING is open to every token')

  const tenant = sdk(TENANT)
  t.equal(await tenant.set('tenant:a', '1'), 'OK', 'a scoped token writes inside its prefix')
  t.equal(await tenant.get('tenant:a'), 1)
  await t.rejects(tenant.set(`${P}outside`, 'x'), /NOPERM.*tenant:/, 'not outside it')
  await t.rejects(tenant.mget('tenant:a', `${P}p1`), /NOPERM/, 'every key of the command must be inside')
  await t.rejects(tenant.rename('tenant:a', `${P}stolen`), /NOPERM/, 'destination keys count too')
  await t.rejects(tenant.scan(0), /NOPERM.*names no key/, 'keyless commands (SCAN) are refused')
  await t.rejects(tenant.eval('return 1', ['tenant:a'], []), /NOPERM.*scripts/, 'scripts are refused')
  const mixed = await raw('POST', '/pipeline', { headers: { authorization: `Bearer ${TENANT}` }, body: JSON.stringify([['GET', 'tenant:a'], ['GET', `${P}p1`]]) })
  t.equal(mixed.status, 200)
  t.match(mixed.json, [{ result: '1' }, { error: /NOPERM/ }], 'in a pipeline a refused command answers its own error')
  const tx = await raw('POST', '/multi-exec', { headers: { authorization: `Bearer ${TENANT}` }, body: JSON.stringify([['SET', 'tenant:b', '1'], ['SET', `${P}p1`, 'pwned']]) })
  t.equal(tx.status, 403, 'a transaction holding a refused command is refused as a whole')
  t.equal(await redis.exists('tenant:b'), 0)
  t.equal(await redis.get(`${P}p1`), 'v1')
  const badToken = await raw('POST', '/', { headers: { authorization: 'Bearer not-a-token-at-all' }, body: '["GET","k"]' })
  t.equal(badToken.status, 401)
  t.match(badToken.json, { error: /GW_ERR_UNAUTHORIZED/ }, 'a bad token: 401, Upstash error shape')
  t.ok(badToken.headers.get('www-authenticate'))
  await t.rejects(sdk('not-a-token-at-all').get('k'), /GW_ERR_UNAUTHORIZED/, 'the SDK shows the message')
  const noToken = await raw('GET', `/get/${encodeURIComponent(`${P}p1`)}`)
  t.equal(noToken.status, 401, 'no token: 401')
})

t.test('reads are served by the replicas, writes by the master and confirmed on both replicas', async t => {
  const master = await topo.master()
  const replicas = topo.redis.filter(r => r.alive && r.port !== master.port)
  t.equal(replicas.length, 2)
  const key = `${P}spread`
  await redis.zadd(key, { score: 1, member: 'm' })
  for (const r of replicas) t.equal(await onNode(r.port, c => c.zscore(key, 'm')), '1', `the write is on replica :${r.port} when acknowledged`)
  const calls = async (port: number): Promise<number> => await onNode(port, c => commandCalls(c, 'zscore'))
  const before = await Promise.all([master.port, ...replicas.map(r => r.port)].map(calls))
  for (let i = 0; i < 20; i++) t.equal(await redis.zscore(key, 'm'), 1)
  const after = await Promise.all([master.port, ...replicas.map(r => r.port)].map(calls))
  const onReplicas = (after[1]! - before[1]!) + (after[2]! - before[2]!)
  t.equal(onReplicas, 20, `the replicas served all 20 ZSCORE (${after[1]! - before[1]!} + ${after[2]! - before[2]!})`)
  t.equal(after[0]! - before[0]!, 0, 'the master served none')
  t.ok(after[1]! > before[1]! && after[2]! > before[2]!, 'round-robin: both replicas served some')

  const read = await raw('POST', '/', { headers: auth, body: JSON.stringify(['ZSCORE', key, 'm']) })
  t.equal(read.headers.get('x-served-by'), 'replica')
  const write = await raw('POST', '/', { headers: auth, body: JSON.stringify(['ZADD', key, '2', 'n']) })
  t.equal(write.headers.get('x-served-by'), 'master')
  const scan = await raw('POST', '/', { headers: auth, body: JSON.stringify(['SCAN', '0', 'MATCH', `${P}*`, 'COUNT', '1000']) })
  t.equal(scan.headers.get('x-served-by'), 'master', 'SCAN cursors belong to one node: the master')
  const readPipe = await raw('POST', '/pipeline', { headers: auth, body: JSON.stringify([['GET', key], ['ZCARD', key]]) })
  t.equal(readPipe.headers.get('x-served-by'), 'replica', 'a read-only pipeline: a replica')
  const writePipe = await raw('POST', '/pipeline', { headers: auth, body: JSON.stringify([['ZCARD', key], ['ZADD', key, '3', 'o']]) })
  t.equal(writePipe.headers.get('x-served-by'), 'master', 'a pipeline holding a write: the master')
  t.match(writePipe.json, [{ result: 2 }, { result: 1 }])
  const readTx = await raw('POST', '/multi-exec', { headers: auth, body: JSON.stringify([['ZCARD', key]]) })
  t.equal(readTx.headers.get('x-served-by'), 'master', 'a transaction: always the master')
})

t.test('read your writes: upstash-sync-token', async t => {
  const w = await raw('POST', '/', { headers: auth, body: JSON.stringify(['SET', `${P}ryw`, 'v']) })
  const token = w.headers.get('upstash-sync-token') ?? ''
  t.match(token, /^[0-9]+$/, 'a write answers the master offset')
  const r = await raw('POST', '/', { headers: { ...auth, 'upstash-sync-token': token }, body: JSON.stringify(['GET', `${P}ryw`]) })
  t.same(r.json, { result: 'v' }, 'a read with the token sees the write')
  t.ok(BigInt(r.headers.get('upstash-sync-token') ?? '0') >= BigInt(token), 'and answers a token at least as recent')
  const ahead = await raw('POST', '/', { headers: { ...auth, 'upstash-sync-token': String(BigInt(token) + 10n ** 12n) }, body: JSON.stringify(['GET', `${P}ryw`]) })
  t.equal(ahead.headers.get('x-served-by'), 'master', 'no replica has reached a token from the future: the master answers')
  const none = await raw('POST', '/', { headers: { ...auth, 'upstash-sync-token': '' }, body: JSON.stringify(['GET', `${P}ryw`]) })
  t.equal(none.status, 200, 'an empty token (the SDK\'s first request) is no token')
  // The SDK keeps and sends the token by itself (readYourWrites defaults to true).
  const client = sdk(ADMIN)
  await client.set(`${P}ryw2`, 'fresh')
  t.match(client.readYourWritesSyncToken ?? '', /^[0-9]+$/, 'the SDK stored the token answered by the write')
  t.equal(await client.get(`${P}ryw2`), 'fresh')
})

t.test('raw protocol: path form, _token, content types, encodings, the gateway\'s own routes', async t => {
  const k = `${P}path`
  const set = await raw('GET', `/set/${encodeURIComponent(k)}/a%2Fb%20c?_token=${ADMIN}`)
  t.equal(set.status, 200)
  t.same(set.json, { result: 'OK' }, 'path form with ?_token=')
  const get = await raw('GET', `/get/${encodeURIComponent(k)}`, { headers: auth })
  t.same(get.json, { result: 'a/b c' }, 'segments are URL-decoded; no Upstash-Encoding: plain strings')
  const b64 = await raw('GET', `/get/${encodeURIComponent(k)}`, { headers: { ...auth, 'upstash-encoding': 'base64' } })
  t.same(b64.json, { result: Buffer.from('a/b c').toString('base64') }, 'Upstash-Encoding: base64')
  const bytes = new Uint8Array(Array.from({ length: 256 }, (_, i) => i))
  const post = await raw('POST', `/set/${encodeURIComponent(`${P}bin`)}?EX=100`, { headers: { ...auth, 'content-type': 'application/octet-stream' }, body: bytes })
  t.same(post.json, { result: 'OK' }, 'POST path form: the body is the value, query parameters follow')
  const back = await raw('POST', '/', { headers: { ...auth, 'upstash-encoding': 'base64' }, body: JSON.stringify(['GET', `${P}bin`]) })
  t.ok(Buffer.from((back.json as { result: string }).result, 'base64').equals(Buffer.from(bytes)), 'binary values round trip byte-exact in base64')
  const ttl = await raw('GET', `/ttl/${encodeURIComponent(`${P}bin`)}`, { headers: auth })
  t.ok(((ttl.json as { result: number }).result) > 90, 'EX 100 from the query string applied')
  for (const type of ['application/json', 'text/plain', 'application/x-www-form-urlencoded', undefined]) {
    const r = await raw('POST', '/', { headers: { ...auth, ...(type === undefined ? {} : { 'content-type': type }) }, body: JSON.stringify(['ECHO', 'hi']) })
    t.same(r.json, { result: 'hi' }, `POST / with ${type ?? 'no content type'}`)
  }
  const empty = await raw('POST', '/', { headers: { ...auth, 'content-type': 'application/json' } })
  t.equal(empty.status, 400)
  t.match(empty.json, { error: /JSON array/ })
  const notJson = await raw('POST', '/pipeline', { headers: auth, body: '[["GET"' })
  t.equal(notJson.status, 400)
  t.match(notJson.json, { error: /not valid JSON/ })
  const tooMany = await raw('POST', '/pipeline', { headers: auth, body: JSON.stringify(Array.from({ length: 51 }, () => ['PING'])) })
  t.equal(tooMany.status, 400)
  t.match(tooMany.json, { error: /at most 50 commands/ })
  const wrongArgs = await raw('GET', '/get', { headers: auth })
  t.equal(wrongArgs.status, 400)
  t.match(wrongArgs.json, { error: /wrong number of arguments/ }, 'a Redis error: 400 with the Redis message')

  // The gateway's own routes are untouched.
  t.equal((await raw('GET', '/healthz')).status, 200)
  t.equal((await raw('GET', '/topology', { headers: auth })).status, 200)
  t.equal((await raw('GET', '/topology')).status, 401, '/topology still needs a token')
  t.match((await raw('GET', '/topology')).json, { error: { code: 'GW_ERR_UNAUTHORIZED' } }, 'in the gateway\'s error shape')
  t.equal((await raw('PUT', `/kv/${encodeURIComponent(`${P}kv`)}`, { headers: auth, body: 'x' })).status, 201)
  t.equal((await raw('GET', `/kv/${encodeURIComponent(`${P}kv`)}`, { headers: auth })).text, 'x')
  const notFound = await raw('GET', '/no/such/route', { headers: auth })
  t.equal(notFound.status, 404, 'a path that is no Redis command: the gateway\'s 404')
  t.match(notFound.json, { error: { code: 'GW_ERR_NOT_FOUND' } })
  const noTokenNotFound = await raw('GET', '/no/such/route')
  t.equal(noTokenNotFound.status, 401, 'unknown paths still need a token first, as before')
  t.match(noTokenNotFound.json, { error: { code: 'GW_ERR_UNAUTHORIZED' } })
  t.equal((await raw('POST', '/kv/x', { headers: auth, body: 'x' })).status, 405, 'POST /kv/x: the key route answers 405 (not the path form: kv is no command)')
  t.equal((await raw('GET', '/', { headers: auth })).status, 404, 'GET /: 404 as before')
  const longKey = await raw('GET', `/kv/${'k'.repeat(5000)}`, { headers: auth })
  t.equal(longKey.status, 400, 'a /kv/ key over the router\'s length limit: still 400 (the path form does not catch it)')
  t.match(longKey.json, { error: { code: 'GW_ERR_KEY_INVALID' } })
  t.equal((await raw('GET', '/GET/nothing-here', { headers: auth })).status, 200, 'command names are case-insensitive in the path form')
})
