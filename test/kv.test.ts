/**
 * The /kv API end to end: an in-process gateway in front of one real Sentinel topology
 * (1 master, 2 replicas, 3 sentinels). Checks status codes, exact bytes, headers, the error
 * shape, TTLs, conditional writes, validation, key encoding (also on the Redis master itself).
 */
import t from 'tap'
import { loadConfig } from '../src/config.js'
import { gatewayEnv, startInProcess } from './helpers/gateway.js'
import { assertError, errorSummary, KvClient, STACK_MARKER } from './helpers/kv-client.js'
import { topologyFor } from './helpers/topology.js'

const topo = await topologyFor(t)
const gw = await startInProcess(t, topo)
const api = new KvClient(gw.url)
/** The limits the gateway runs with (the defaults: no override in gatewayEnv). */
const { maxKeyBytes, maxValueBytes } = loadConfig(gatewayEnv(topo))
/** Unique per run, so keys never collide with another file's or an earlier run's. */
const P = `kvt:${process.pid}:${Date.now()}:`

/** The raw bytes the master itself holds under `key` (null when absent). */
async function onMaster (key: string): Promise<Buffer | null> {
  const m = await topo.masterProc()
  const c = topo.client(m.port)
  try {
    return await c.getBuffer(key)
  } finally {
    await c.quit()
  }
}

t.test('PUT creates, PUT replaces, GET answers the bytes, DELETE removes', async t => {
  const key = `${P}roundtrip`
  const created = await api.put(key, 'hello world', { contentType: 'text/plain' })
  t.equal(created.status, 201, 'first PUT answers 201')
  t.match(created.headers.get('content-type') ?? '', /^application\/json/)
  const cBody = created.json as { result: string; syncToken: string; replicas: number }
  t.same(Object.keys(cBody).sort(), ['replicas', 'result', 'syncToken'], 'body has exactly result, syncToken, replicas')
  t.equal(cBody.result, 'created')
  t.match(cBody.syncToken, /^[0-9]+$/, 'syncToken is a decimal replication offset')
  t.equal(created.headers.get('x-sync-token'), cBody.syncToken, 'X-Sync-Token header equals the body syncToken')
  t.equal(cBody.replicas, 2, 'both replicas confirmed the write')

  const replaced = await api.put(key, 'second value', { contentType: 'text/plain' })
  t.equal(replaced.status, 200, 'second PUT answers 200')
  const rBody = replaced.json as { result: string; syncToken: string; replicas: number }
  t.equal(rBody.result, 'replaced')
  t.equal(replaced.headers.get('x-sync-token'), rBody.syncToken)
  t.ok(BigInt(rBody.syncToken) > BigInt(cBody.syncToken), 'the sync token grows with each write')

  const got = await api.get(key)
  t.equal(got.status, 200)
  t.equal(got.text, 'second value', 'GET answers the last value, byte for byte')
  t.match(got.headers.get('content-type') ?? '', /^application\/octet-stream/)
  t.equal(got.headers.get('x-served-by'), 'replica', 'a default GET is served by a replica')
  t.equal(got.headers.get('x-ttl'), null, 'no X-TTL for a key without expiry')

  const del = await api.del(key)
  t.equal(del.status, 204, 'DELETE answers 204')
  t.equal(del.body.length, 0, 'with an empty body')
  t.match(del.headers.get('x-sync-token') ?? '', /^[0-9]+$/, 'DELETE answers X-Sync-Token too')
  assertError(t, await api.get(key), 404, 'GW_ERR_KEY_NOT_FOUND', 'GET after DELETE')
  assertError(t, await api.get(key, 'consistency=strong'), 404, 'GW_ERR_KEY_NOT_FOUND', 'strong GET after DELETE')
  assertError(t, await api.del(key), 404, 'GW_ERR_KEY_NOT_FOUND', 'DELETE of a missing key')
  t.equal(await onMaster(key), null, 'the key is gone from the master')
})

t.test('a value holding all 256 byte values comes back byte-identical', async t => {
  const key = `${P}bytes`
  const value = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
  const doubled = Buffer.concat([value, Buffer.from(value).reverse()]) // also odd sequences such as \xff\x00
  t.equal((await api.put(key, doubled)).status, 201)
  for (const query of ['', 'consistency=strong']) {
    const got = await api.get(key, query)
    t.equal(got.status, 200)
    t.equal(got.body.length, doubled.length, `same length (${query || 'default'})`)
    t.ok(got.body.equals(doubled), `identical bytes (${query || 'default'})`)
  }
  const stored = await onMaster(key)
  t.ok(stored?.equals(doubled), 'the master holds exactly those bytes')
})

t.test('a value of exactly KV_MAX_VALUE_BYTES (1 MiB) is stored and read back', async t => {
  t.equal(maxValueBytes, 1048576, 'the default limit is 1 MiB')
  const key = `${P}big`
  const value = Buffer.alloc(maxValueBytes)
  for (let i = 0; i < value.length; i++) value[i] = (i * 31 + 7) & 0xff
  const put = await api.put(key, value)
  t.equal(put.status, 201, `PUT of ${value.length} bytes answers 201 (${put.text.slice(0, 200)})`)
  const got = await api.get(key)
  t.equal(got.status, 200)
  t.equal(got.body.length, value.length)
  t.ok(got.body.equals(value), '1 MiB comes back byte-identical')
})

t.test('a value one byte over KV_MAX_VALUE_BYTES gets 413 and is not stored', async t => {
  const key = `${P}toobig`
  const r = await api.put(key, Buffer.alloc(maxValueBytes + 1, 0x61))
  assertError(t, r, 413, 'GW_ERR_VALUE_TOO_LARGE', 'PUT of 1048577 bytes')
  t.match((r.json as { error: { message: string } }).error.message, String(maxValueBytes), 'the message names the limit')
  assertError(t, await api.get(key, 'consistency=strong'), 404, 'GW_ERR_KEY_NOT_FOUND', 'GET of the refused key')
})

t.test('a key written with ?ttl=1 answers X-TTL, then expires', async t => {
  const key = `${P}ttl1`
  const long = `${P}ttl3600`
  const putAt = Date.now()
  const put = await api.put(key, 'short-lived', { query: 'ttl=1' })
  t.equal(put.status, 201)
  const got = await api.get(key)
  t.equal(got.status, 200, 'readable right after the PUT')
  t.equal(got.headers.get('x-ttl'), '1', 'X-TTL is 1 right after a ttl=1 PUT')
  t.equal((await api.put(long, 'v', { query: 'ttl=3600' })).status, 201)
  const gotLong = await api.get(long)
  const ttl = Number(gotLong.headers.get('x-ttl'))
  t.ok(ttl >= 3590 && ttl <= 3600, `X-TTL of a ttl=3600 key is in 3590..3600 (got ${gotLong.headers.get('x-ttl')})`)

  await new Promise(resolve => setTimeout(resolve, Math.max(0, putAt + 2200 - Date.now())))
  assertError(t, await api.get(key), 404, 'GW_ERR_KEY_NOT_FOUND', 'default GET 2.2 s after a ttl=1 PUT')
  assertError(t, await api.get(key, 'consistency=strong'), 404, 'GW_ERR_KEY_NOT_FOUND', 'strong GET 2.2 s after a ttl=1 PUT')
  t.equal((await api.get(long)).status, 200, 'the ttl=3600 key is still there')

  // A plain PUT over a key with a TTL makes it persistent (SET semantics).
  t.equal((await api.put(long, 'v2')).status, 200)
  const persisted = await api.get(long)
  t.equal(persisted.headers.get('x-ttl'), null, 'a PUT without ttl removes the expiry')
})

t.test('If-None-Match: * only creates, If-Match: * only replaces', async t => {
  const key = `${P}cond`
  const created = await api.put(key, 'first', { headers: { 'if-none-match': '*' } })
  t.equal(created.status, 201, 'If-None-Match: * on a missing key creates it (201)')
  t.equal((created.json as { result: string }).result, 'created')
  const refused = await api.put(key, 'second', { headers: { 'if-none-match': '*' } })
  assertError(t, refused, 412, 'GW_ERR_PRECONDITION_FAILED', 'If-None-Match: * on an existing key')
  t.equal((await api.get(key, 'consistency=strong')).text, 'first', 'the refused write changed nothing')

  const replaced = await api.put(key, 'third', { headers: { 'if-match': '*' } })
  t.equal(replaced.status, 200, 'If-Match: * on an existing key replaces it (200)')
  t.equal((replaced.json as { result: string }).result, 'replaced')
  t.equal((await api.get(key, 'consistency=strong')).text, 'third')

  const missing = `${P}cond-missing`
  assertError(t, await api.put(missing, 'x', { headers: { 'if-match': '*' } }), 412, 'GW_ERR_PRECONDITION_FAILED', 'If-Match: * on a missing key')
  t.equal(await onMaster(missing), null, 'the refused replace did not create the key')

  assertError(t, await api.put(key, 'x', { headers: { 'if-match': '*', 'if-none-match': '*' } }), 400, 'GW_ERR_BAD_REQUEST', 'both conditions at once')
  assertError(t, await api.put(key, 'x', { headers: { 'if-none-match': '"etag"' } }), 400, 'GW_ERR_BAD_REQUEST', 'If-None-Match with an etag')
  t.equal((await api.get(key, 'consistency=strong')).text, 'third', 'refused requests changed nothing')
})

t.test('bad parameters, keys and routes get 400/404 with the error shape', async t => {
  const key = `${P}bad`
  for (const ttl of ['abc', '0', '-1', '1.5', '']) {
    assertError(t, await api.put(key, 'v', { query: `ttl=${ttl}` }), 400, 'GW_ERR_BAD_REQUEST', `PUT ?ttl=${ttl}`)
  }
  t.equal(await onMaster(key), null, 'no refused PUT stored anything')

  assertError(t, await api.put(key, 'v', { query: 'foo=1' }), 400, 'GW_ERR_BAD_REQUEST', 'PUT with an unknown query parameter')
  assertError(t, await api.get(key, 'foo=1'), 400, 'GW_ERR_BAD_REQUEST', 'GET with an unknown query parameter')
  assertError(t, await api.del(key, 'foo=1'), 400, 'GW_ERR_BAD_REQUEST', 'DELETE with an unknown query parameter')
  assertError(t, await api.get(key, 'consistency=weak'), 400, 'GW_ERR_BAD_REQUEST', 'GET ?consistency=weak')
  assertError(t, await api.put(key, 'v', { query: 'durability=maybe' }), 400, 'GW_ERR_BAD_REQUEST', 'PUT ?durability=maybe')

  for (const method of ['GET', 'PUT', 'DELETE']) {
    const r = await api.request(method, '/kv/', method === 'PUT' ? { body: 'v', headers: { 'content-type': 'text/plain' } } : {})
    assertError(t, r, 400, 'GW_ERR_KEY_INVALID', `${method} /kv/ (empty key)`)
  }

  const exact = 'k'.repeat(maxKeyBytes)
  t.equal((await api.put(exact, 'v')).status, 201, `a key of exactly KV_MAX_KEY_BYTES (${maxKeyBytes}) bytes is accepted`)
  t.equal((await api.get(exact)).status, 200)
  t.equal((await api.del(exact)).status, 204)
  const tooLong = 'k'.repeat(maxKeyBytes + 1)
  for (const method of ['GET', 'PUT', 'DELETE']) {
    const r = await api.request(method, `/kv/${tooLong}`, method === 'PUT' ? { body: 'v', headers: { 'content-type': 'text/plain' } } : {})
    assertError(t, r, 400, 'GW_ERR_KEY_INVALID', `${method} with a key of KV_MAX_KEY_BYTES+1 bytes`)
  }
  // Bytes, not characters: 342 three-byte characters = 1026 bytes.
  const wide = '€'.repeat(Math.ceil((maxKeyBytes + 1) / 3))
  assertError(t, await api.put(wide, 'v'), 400, 'GW_ERR_KEY_INVALID', `PUT with a key of ${Buffer.byteLength(wide)} bytes in ${wide.length} characters`)

  assertError(t, await api.request('GET', '/nope'), 404, 'GW_ERR_NOT_FOUND', 'GET of an unknown route')
  assertError(t, await api.request('POST', `/kv/${key}`, { body: 'v' }), 405, 'GW_ERR_METHOD_NOT_ALLOWED', 'POST /kv/:key (not a method of the route)')
  assertError(t, await api.request('GET', '/kv'), 404, 'GW_ERR_NOT_FOUND', 'GET /kv without a key')
})

t.test('a key far over KV_MAX_KEY_BYTES gets 400 GW_ERR_KEY_INVALID in the error shape, not the router\'s own 414 body', async t => {
  // app.ts sets the router's maxParamLength to KV_MAX_KEY_BYTES*3+64 characters of the *encoded*
  // key; a longer key never reaches the route's byte check (nor the error handler).
  const huge = 'k'.repeat(maxKeyBytes * 4)
  const want = { status: 400, code: 'GW_ERR_KEY_INVALID', shape: 'gateway' }
  const get = await api.get(huge)
  t.same(errorSummary(get), want, `GET with a key of ${huge.length} bytes`)
  t.ok(get.headers.get('x-request-id'), 'the answer carries X-Request-Id like every other answer')
  t.same(errorSummary(await api.put(huge, 'v')), want, `PUT with a key of ${huge.length} bytes`)
})

t.test('a key with malformed percent-encoding gets 400 in the gateway\'s error shape', async t => {
  for (const raw of ['%ZZ', '%E0%A4%A', 'abc%']) {
    const r = await api.request('GET', `/kv/${raw}`)
    t.same(errorSummary(r), { status: 400, code: 'GW_ERR_KEY_INVALID', shape: 'gateway' }, `GET /kv/${raw}`)
    t.notOk(r.text.includes(STACK_MARKER), 'no stack trace')
  }
})

t.test('a ttl that is not plain decimal digits (hex, exponent, sign, spaces) gets 400', async t => {
  const key = `${P}ttl-format`
  for (const ttl of ['0x10', '1e2', '%2B5', '%205']) {
    const r = await api.put(key, 'v', { query: `ttl=${ttl}` })
    t.same(errorSummary(r), { status: 400, code: 'GW_ERR_BAD_REQUEST', shape: 'gateway' }, `PUT ?ttl=${decodeURIComponent(ttl)}`)
  }
  t.equal(await onMaster(key), null, 'none of them stored the key')
})

t.test('an empty body and a body without Content-Type are stored as given', async t => {
  const empty = `${P}empty`
  t.equal((await api.request('PUT', `/kv/${encodeURIComponent(empty)}`)).status, 201, 'PUT without a body creates the key')
  const got = await api.get(empty)
  t.equal(got.status, 200, 'an empty value is a value (200, not 404)')
  t.equal(got.body.length, 0)
  const noType = `${P}no-content-type`
  const bytes = Buffer.from([0, 1, 2, 250, 255])
  t.equal((await api.request('PUT', `/kv/${encodeURIComponent(noType)}`, { body: bytes })).status, 201, 'PUT without Content-Type is accepted')
  t.ok((await api.get(noType)).body.equals(bytes), 'and stored byte for byte')
  const json = `${P}json`
  t.equal((await api.put(json, '{"a":[1,2]}', { contentType: 'application/json' })).status, 201)
  const gotJson = await api.get(json)
  t.equal(gotJson.text, '{"a":[1,2]}', 'a JSON body is stored verbatim, not parsed')
  t.match(gotJson.headers.get('content-type') ?? '', /^application\/octet-stream/)
})

t.test('a key holding a non-string Redis value answers 409 GW_ERR_WRONG_TYPE on GET', async t => {
  const key = `${P}list`
  const m = await topo.masterProc()
  const c = topo.client(m.port)
  try {
    await c.rpush(key, 'a', 'b')
    t.equal(await c.call('WAIT', '2', '2000'), 2, 'the list reached both replicas')
  } finally {
    await c.quit()
  }
  assertError(t, await api.get(key), 409, 'GW_ERR_WRONG_TYPE', 'default GET of a list')
  assertError(t, await api.get(key, 'consistency=strong'), 409, 'GW_ERR_WRONG_TYPE', 'strong GET of a list')
  // A user's own WRONGTYPE is not a node fault: the replicas stay healthy and keep serving.
  const view = await api.topology()
  t.ok(view.breakers.every(b => b.state === 'closed'), 'no circuit breaker opened')
  t.equal((await api.del(key)).status, 204, 'DELETE removes it whatever its type')
})

t.test('keys with unicode, spaces, ":" and "/" round-trip and are stored under exactly the decoded key', async t => {
  const keys = [
    `${P}ünïcødé-日本語-🔑`,
    `${P}with spaces  and\ttab`,
    `${P}a:b:c`,
    `${P}path/with/slashes`,
    `${P}/leading-and-trailing/`,
    `${P}%2F-literal-percent-and+plus?&#`
  ]
  for (const [i, key] of keys.entries()) {
    const value = `value-${i}-${key}`
    const put = await api.put(key, value, { contentType: 'text/plain; charset=utf-8' })
    t.equal(put.status, 201, `PUT ${JSON.stringify(key)} answers 201 (${put.text.slice(0, 200)})`)
    t.equal(put.headers.get('location'), `/kv/${encodeURIComponent(key)}`, 'Location names the encoded key')
    const stored = await onMaster(key)
    t.equal(stored?.toString('utf8'), value, `the master stores it under exactly ${JSON.stringify(key)}`)
    const got = await api.get(key)
    t.equal(got.status, 200)
    t.equal(got.text, value, `GET ${JSON.stringify(key)} answers the value`)
  }
  // The slash is part of the key: %2F and a real path separator are different URLs.
  const slashKey = `${P}path/with/slashes`
  assertError(t, await api.request('GET', `/kv/${encodeURIComponent(`${P}path`)}/with/slashes`), 404, 'GW_ERR_NOT_FOUND', 'unencoded "/" is a different route')
  t.equal((await api.del(slashKey)).status, 204, 'DELETE with %2F removes the key')
  t.equal(await onMaster(slashKey), null)
})

t.test('GET ?consistency=strong is served by the master, a default GET by a replica', async t => {
  const key = `${P}consistency`
  t.equal((await api.put(key, 'v')).status, 201)
  for (let i = 0; i < 4; i++) {
    const strong = await api.get(key, 'consistency=strong')
    t.equal(strong.status, 200)
    t.equal(strong.headers.get('x-served-by'), 'master', `strong GET #${i + 1} served by the master`)
    const eventual = await api.get(key)
    t.equal(eventual.status, 200)
    t.equal(eventual.headers.get('x-served-by'), 'replica', `default GET #${i + 1} served by a replica`)
    const explicit = await api.get(key, 'consistency=eventual')
    t.equal(explicit.headers.get('x-served-by'), 'replica', `?consistency=eventual GET #${i + 1} served by a replica`)
  }
  // A 404 also says who answered.
  const missing = await api.get(`${P}consistency-missing`, 'consistency=strong')
  t.equal(missing.status, 404)
  t.equal(missing.headers.get('x-served-by'), 'master')
})

t.test('read-your-writes: a GET with the sync token of a write sees that write', async t => {
  const key = `${P}sync`
  for (let i = 0; i < 5; i++) {
    const put = await api.put(key, `v${i}`)
    t.ok(put.status === 200 || put.status === 201)
    const token = put.headers.get('x-sync-token') ?? ''
    const viaQuery = await api.get(key, `syncToken=${token}`)
    t.equal(viaQuery.text, `v${i}`, `?syncToken read #${i + 1} sees the write`)
    const viaHeader = await api.get(key, '', { 'x-sync-token': token })
    t.equal(viaHeader.text, `v${i}`, `X-Sync-Token read #${i + 1} sees the write`)
  }
  assertError(t, await api.get(key, 'syncToken=abc'), 400, 'GW_ERR_BAD_REQUEST', 'a non-numeric sync token')
})

t.test('no answer body contains a stack trace', async t => {
  t.ok(api.seen.length > 50, `checked ${api.seen.length} answers`)
  const leaking = api.seen.filter(s => s.text.includes(STACK_MARKER))
  t.same(leaking.map(s => `${s.method} ${s.path.slice(0, 80)} -> ${s.status}`), [], 'no body contains "    at "')
  t.ok(api.seen.some(s => s.status >= 400), 'error answers were among them')
})
