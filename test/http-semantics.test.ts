/**
 * HTTP semantics of the /kv API against one real Sentinel topology: strong ETags (SHA-1 of the
 * bytes), If-None-Match -> 304, If-Match compare-and-set -> 200/412 (also 10 concurrent writers:
 * exactly one wins), HEAD (GET's headers, no body: checked on the raw socket), the batch route
 * (order, statuses, utf8/base64, limits, replica reads, a 1 MiB value), helmet's headers, and no
 * stack trace or internal address in any error body.
 */
import { createHash, randomBytes } from 'node:crypto'
import t from 'tap'
import { startInProcess } from './helpers/gateway.js'
import { leakIn, rawRequest, type RawAnswer } from './helpers/edge-http.js'
import { assertError, errorSummary, KvClient, kvPath, type Answer } from './helpers/kv-client.js'
import { topologyFor } from './helpers/topology.js'

const BATCH_MAX_OPS = 20
const MIB = 1024 * 1024
/** Load shedding off: on a loaded CI machine a CPU-starved test process would answer 503 (overloaded), which is not what this file tests. */
const NO_SHEDDING = { EVENT_LOOP_MAX_DELAY_MS: '0' }
const topo = await topologyFor(t)
const gw = await startInProcess(t, topo, { ...NO_SHEDDING, BATCH_MAX_OPS: String(BATCH_MAX_OPS) })
const api = new KvClient(gw.url)
const P = `http:${process.pid}:${Date.now()}:`
/** Every raw-socket answer, for the leak check at the end. */
const rawSeen: Array<{ what: string; status: number; text: string }> = []

const sha1 = (b: Buffer | string): string => createHash('sha1').update(b).digest('hex')
const etagOf = (b: Buffer | string): string => `"${sha1(b)}"`

async function onMaster (key: string): Promise<Buffer | null> {
  const c = topo.client((await topo.masterProc()).port)
  try { return await c.getBuffer(key) } finally { await c.quit() }
}

async function raw (method: string, path: string, headers: Record<string, string> = {}): Promise<RawAnswer> {
  const r = await rawRequest(gw.url, method, path, headers)
  rawSeen.push({ what: `${method} ${path}`, status: r.status, text: r.body.toString('utf8') })
  return r
}

interface BatchResult { status: number; value?: string; etag?: string; servedBy?: string; syncToken?: string; error?: { code: string; message: string } }
async function batch (body: unknown, contentType = 'application/json'): Promise<Answer> {
  return await api.request('POST', '/kv/_batch', { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': contentType } })
}
const results = (r: Answer): BatchResult[] => (r.json as { results: BatchResult[] }).results

t.test('GET answers a strong ETag: the quoted SHA-1 of the bytes', async t => {
  const values: Array<[string, Buffer]> = [
    ['text', Buffer.from('hello etag')],
    ['binary', Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i))],
    ['empty', Buffer.alloc(0)]
  ]
  for (const [what, v] of values) {
    const k = `${P}etag-${what}`
    const put = await api.put(k, v)
    t.equal(put.status, 201, `${what}: created (got ${put.status} ${put.text.slice(0, 160)})`)
    const g = await api.get(k)
    t.equal(g.status, 200, `${what}: GET 200`)
    const etag = g.headers.get('etag') ?? ''
    t.match(etag, /^"[0-9a-f]{40}"$/, `${what}: strong ETag, quoted 40 hex digits (no W/)`)
    t.equal(etag, etagOf(v), `${what}: the SHA-1 of the bytes`)
    t.equal(put.headers.get('etag'), etag, `${what}: the PUT answered the same ETag`)
    t.equal((await api.get(k, 'consistency=strong')).headers.get('etag'), etag, `${what}: the master answers the same ETag`)
  }
})

t.test('If-None-Match on GET: 304 without a body when it matches, 200 otherwise', async t => {
  const k = `${P}inm`
  const v = Buffer.from('conditional get')
  t.equal((await api.put(k, v)).status, 201)
  const etag = etagOf(v)
  const other = etagOf('something else')
  const variants: Array<[string, string, number]> = [
    ['the ETag', etag, 304],
    ['the weak form W/ of the ETag', `W/${etag}`, 304],
    ['a list holding the ETag', `${other}, ${etag}`, 304],
    ['*', '*', 304],
    ['another ETag', other, 200],
    ['the ETag unquoted', sha1(v), 200]
  ]
  for (const [what, inm, want] of variants) {
    const r = await raw('GET', kvPath(k), { 'If-None-Match': inm })
    t.equal(r.status, want, `If-None-Match: ${what} -> ${want}`)
    if (want === 304) {
      t.equal(r.body.length, 0, `${what}: no body on the wire`)
      t.equal(r.headers.etag, etag, `${what}: 304 repeats the ETag`)
      t.match(r.headers['x-served-by'] ?? '', /^(replica|master)$/, `${what}: 304 says who answered`)
    } else {
      t.ok(r.body.equals(v), `${what}: 200 with the value`)
    }
  }
  // And through fetch: a client library sees 304 too.
  t.equal((await api.get(k, '', { 'if-none-match': etag })).status, 304)
  t.equal((await api.get(k, 'consistency=strong', { 'if-none-match': etag })).status, 304, 'also from the master')
  t.equal((await api.get(`${P}inm-missing`, '', { 'if-none-match': '*' })).status, 404, 'If-None-Match on a missing key: 404')
})

t.test('PUT If-Match: compare-and-set', async t => {
  const k = `${P}cas`
  const v1 = Buffer.from('version 1')
  const created = await api.put(k, v1)
  t.equal(created.status, 201)
  t.equal(created.headers.get('etag'), etagOf(v1), 'PUT answers the ETag of the new value')

  const v2 = Buffer.from('version 2')
  const ok = await api.put(k, v2, { headers: { 'if-match': etagOf(v1) } })
  t.equal(ok.status, 200, 'If-Match with the current ETag: 200')
  t.equal((ok.json as { result?: string }).result, 'replaced')
  t.equal(ok.headers.get('etag'), etagOf(v2), 'answers the ETag of the new value')
  t.ok((await onMaster(k))?.equals(v2), 'the master holds the new value')
  t.equal((await api.get(k)).headers.get('etag'), etagOf(v2), 'GET answers the new ETag')

  const stale = await api.put(k, 'version 3', { headers: { 'if-match': etagOf(v1) } })
  assertError(t, stale, 412, 'GW_ERR_PRECONDITION_FAILED', 'If-Match with a stale ETag')
  t.equal(stale.headers.get('etag'), null, 'a refused PUT answers no ETag')
  t.ok((await onMaster(k))?.equals(v2), 'the value is unchanged on the master')

  assertError(t, await api.put(`${P}cas-missing`, 'x', { headers: { 'if-match': etagOf('x') } }), 412, 'GW_ERR_PRECONDITION_FAILED', 'If-Match on a missing key')
  t.equal(await onMaster(`${P}cas-missing`), null, 'the missing key was not created')
  assertError(t, await api.put(`${P}cas-missing`, 'x', { headers: { 'if-match': '*' } }), 412, 'GW_ERR_PRECONDITION_FAILED', 'If-Match: * on a missing key')

  for (const bad of [`W/${etagOf(v2)}`, sha1(v2), `"${sha1(v2).toUpperCase()}"`, `x${sha1(v2)}x`, `${etagOf(v2)}, ${etagOf(v1)}`]) {
    const r = await api.put(k, 'bad header', { headers: { 'if-match': bad } })
    t.equal(r.status, 400, `If-Match: ${bad} is not a valid ETag of this gateway: 400`)
  }
  t.ok((await onMaster(k))?.equals(v2), 'still unchanged')
})

t.test('10 concurrent compare-and-sets with the same ETag: exactly one wins', async t => {
  for (let round = 0; round < 3; round++) {
    const k = `${P}race-${round}`
    const base = Buffer.from(`base ${round}`)
    t.equal((await api.put(k, base)).status, 201)
    const bodies = Array.from({ length: 10 }, (_, i) => Buffer.from(`writer ${i} round ${round}`))
    const answers = await Promise.all(bodies.map(async b => await api.put(k, b, { headers: { 'if-match': etagOf(base) } })))
    const statuses = answers.map(a => a.status)
    t.equal(statuses.filter(s => s === 200).length, 1, `round ${round}: exactly one 200 (got ${statuses.join(',')})`)
    t.equal(statuses.filter(s => s === 412).length, 9, `round ${round}: nine 412`)
    const winner = bodies[statuses.indexOf(200)]!
    t.ok((await onMaster(k))?.equals(winner), `round ${round}: the master holds the winner's value`)
    t.equal(answers[statuses.indexOf(200)]?.headers.get('etag'), etagOf(winner), `round ${round}: the winner got its ETag`)
  }
})

t.test('HEAD: the headers of GET, no body', async t => {
  const k = `${P}head`
  const v = randomBytes(777)
  t.equal((await api.put(k, v)).status, 201)
  const g = await raw('GET', kvPath(k))
  const h = await raw('HEAD', kvPath(k))
  t.equal(g.status, 200)
  t.equal(h.status, 200, 'HEAD of an existing key: 200')
  t.equal(h.body.length, 0, 'no body on the wire')
  t.equal(h.headers.etag, etagOf(v), 'HEAD answers the ETag')
  t.equal(h.headers.etag, g.headers.etag, 'the same ETag as GET')
  t.equal(h.headers['x-served-by'], g.headers['x-served-by'], 'the same X-Served-By as GET')
  t.match(h.headers['x-served-by'] ?? '', /^(replica|master)$/)
  t.equal(h.headers['content-length'], String(v.length), 'Content-Length is the length of the value')
  t.equal(h.headers['content-type'], g.headers['content-type'], 'the same Content-Type as GET')

  const ttlKey = `${P}head-ttl`
  t.equal((await api.put(ttlKey, 'x', { query: 'ttl=300' })).status, 201)
  const ht = await raw('HEAD', kvPath(ttlKey))
  t.ok(Number(ht.headers['x-ttl']) > 0 && Number(ht.headers['x-ttl']) <= 300, 'HEAD answers X-TTL')

  const missing = await raw('HEAD', kvPath(`${P}head-missing`))
  t.equal(missing.status, 404, 'HEAD of a missing key: 404')
  t.equal(missing.body.length, 0, 'no body on the wire')
  const viaFetch = await api.request('HEAD', kvPath(k))
  t.equal(viaFetch.status, 200)
  t.equal(viaFetch.body.length, 0)
})

t.test('batch: per-operation statuses in order', async t => {
  const k = `${P}batch-a`
  const r = await batch({
    ops: [
      { op: 'put', key: k, value: 'alpha' },
      { op: 'get', key: k },
      { op: 'get', key: `${P}batch-missing` },
      { op: 'put', key: k, value: 'beta' },
      { op: 'get', key: k, consistency: 'strong' },
      { op: 'delete', key: k },
      { op: 'delete', key: k },
      { op: 'get', key: k }
    ]
  })
  t.equal(r.status, 200)
  const res = results(r)
  t.same(res.map(x => x.status), [201, 200, 404, 200, 200, 204, 404, 404], 'statuses in order')
  t.equal(res[0]?.etag, etagOf('alpha'), 'put answers the ETag')
  t.match(res[0]?.syncToken ?? '', /^[0-9]+$/, 'put answers a sync token')
  t.equal(res[1]?.value, 'alpha', 'get answers the value')
  t.equal(res[1]?.etag, etagOf('alpha'), 'get answers the ETag')
  t.equal(res[1]?.servedBy, 'replica', 'a batch get is served by a replica')
  t.same(res[2]?.error?.code, 'GW_ERR_KEY_NOT_FOUND', 'missing key: error code')
  t.equal(res[2]?.value, undefined, 'missing key: no value')
  t.equal(res[4]?.value, 'beta')
  t.equal(res[4]?.servedBy, 'master', 'consistency strong in a batch: the master')
  t.match(res[5]?.syncToken ?? '', /^[0-9]+$/, 'delete answers a sync token')
  t.equal(res[6]?.error?.code, 'GW_ERR_KEY_NOT_FOUND', 'delete of a missing key: 404 in place')
  t.equal(await onMaster(k), null, 'gone from the master')
})

t.test('batch: reads land on replicas', async t => {
  const keys = Array.from({ length: 6 }, (_, i) => `${P}batch-read-${i}`)
  t.same(results(await batch({ ops: keys.map(key => ({ op: 'put', key, value: key })) })).map(x => x.status), keys.map(() => 201))
  const res = results(await batch({ ops: keys.map(key => ({ op: 'get', key })) }))
  t.same(res.map(x => x.status), keys.map(() => 200))
  t.same(res.map(x => x.value), keys, 'each value')
  t.same(res.map(x => x.servedBy), keys.map(() => 'replica'), 'every read served by a replica')
})

t.test('batch: utf8 and base64 encodings', async t => {
  const text = 'héllo ✓ 🚀 \u0000 end'
  const k = `${P}batch-utf8`
  t.same(results(await batch({ ops: [{ op: 'put', key: k, value: text }] })).map(x => x.status), [201])
  t.ok((await onMaster(k))?.equals(Buffer.from(text, 'utf8')), 'utf8 (default): the master holds the UTF-8 bytes')
  t.equal(results(await batch({ ops: [{ op: 'get', key: k }], encoding: 'utf8' }))[0]?.value, text, 'utf8 out')
  t.equal(results(await batch({ ops: [{ op: 'get', key: k }], encoding: 'base64' }))[0]?.value, Buffer.from(text).toString('base64'), 'base64 out')

  const bin = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(1000)])
  const kb = `${P}batch-bin`
  const put = results(await batch({ ops: [{ op: 'put', key: kb, value: bin.toString('base64') }], encoding: 'base64' }))
  t.equal(put[0]?.status, 201)
  t.equal(put[0]?.etag, etagOf(bin), 'the ETag of the decoded bytes')
  t.ok((await onMaster(kb))?.equals(bin), 'base64 in: the master holds the exact bytes')
  const got = results(await batch({ ops: [{ op: 'get', key: kb }], encoding: 'base64' }))[0]
  t.ok(Buffer.from(got?.value ?? '', 'base64').equals(bin), 'base64 out: the exact bytes back')
  t.ok((await api.get(kb)).body.equals(bin), 'a single-key GET answers the same bytes')
  const single = randomBytes(300)
  await api.put(`${P}batch-bin2`, single)
  t.ok(Buffer.from(results(await batch({ ops: [{ op: 'get', key: `${P}batch-bin2` }], encoding: 'base64' }))[0]?.value ?? '', 'base64').equals(single), 'a single-key PUT read back through a base64 batch')
})

t.test('batch: a 1 MiB value (base64) works; one byte more is refused in place', async t => {
  const big = randomBytes(MIB)
  const k = `${P}batch-big`
  const r = await batch({ ops: [{ op: 'put', key: k, value: big.toString('base64') }, { op: 'put', key: `${k}-over`, value: randomBytes(MIB + 1).toString('base64') }, { op: 'get', key: k }], encoding: 'base64' })
  t.equal(r.status, 200, 'the batch is accepted')
  const res = results(r)
  t.equal(res[0]?.status, 201, '1 MiB put: 201')
  t.equal(res[1]?.status, 413, '1 MiB + 1 byte put: 413 in place')
  t.equal(res[1]?.error?.code, 'GW_ERR_VALUE_TOO_LARGE')
  t.equal(res[2]?.status, 200)
  t.ok(Buffer.from(res[2]?.value ?? '', 'base64').equals(big), 'the 1 MiB value comes back identical')
  t.ok((await onMaster(k))?.equals(big), 'the master holds the 1 MiB value')
  t.equal(await onMaster(`${k}-over`), null, 'the oversized value was not stored')
})

t.test('batch: limits and invalid requests are 400 with the error shape', async t => {
  const ops = (n: number): unknown[] => Array.from({ length: n }, (_, i) => ({ op: 'get', key: `${P}lim-${i}` }))
  const atMax = await batch({ ops: ops(BATCH_MAX_OPS) })
  t.equal(atMax.status, 200, `${BATCH_MAX_OPS} ops (BATCH_MAX_OPS): accepted`)
  t.equal(results(atMax).length, BATCH_MAX_OPS)
  assertError(t, await batch({ ops: ops(BATCH_MAX_OPS + 1) }), 400, 'GW_ERR_BAD_REQUEST', `${BATCH_MAX_OPS + 1} ops`)
  const bad: Array<[string, unknown]> = [
    ['an unknown op', { ops: [{ op: 'frobnicate', key: 'x' }] }],
    ['put without a value', { ops: [{ op: 'put', key: `${P}novalue` }] }],
    ['an empty key', { ops: [{ op: 'get', key: '' }] }],
    ['an extra property', { ops: [{ op: 'get', key: 'x', extra: true }] }],
    ['no ops', { ops: [] }],
    ['ops not an array', { ops: { op: 'get', key: 'x' } }],
    ['an unknown encoding', { ops: [{ op: 'get', key: 'x' }], encoding: 'hex' }],
    ['a negative ttl', { ops: [{ op: 'put', key: `${P}ttl`, value: 'v', ttl: -1 }] }],
    ['a valid op next to an invalid one', { ops: [{ op: 'put', key: `${P}half`, value: 'v' }, { op: 'nope' }] }],
    ['not JSON', '{"ops": [']
  ]
  for (const [what, body] of bad) assertError(t, await batch(body), 400, 'GW_ERR_BAD_REQUEST', `batch with ${what}`)
  // Bodies are validated with the app-wide ajv option coerceTypes: 'array' (src/app.ts), which also
  // turns null into "" and 42 into "42" inside a batch: a client bug silently stores a wrong value.
  const coerced: Array<[string, unknown]> = [
    ['a value that is a number', { ops: [{ op: 'put', key: `${P}num`, value: 42 }] }],
    ['a value that is null', { ops: [{ op: 'put', key: `${P}null`, value: null }] }]
  ]
  for (const [what, body] of coerced) {
    const r = await batch(body)
    t.same(errorSummary(r), { status: 400, code: 'GW_ERR_BAD_REQUEST', shape: 'gateway' }, `batch with ${what}: 400 (got ${r.status} ${r.text.slice(0, 120)})`)
  }
  t.equal(await onMaster(`${P}half`), null, 'an invalid batch runs none of its operations')
  t.equal(await onMaster(`${P}num`), null, 'a number value was not stored (as "42")')
  t.equal(await onMaster(`${P}null`), null, 'a null value was not stored (as an empty value)')
  // README (Errors table): 415 GW_ERR_UNSUPPORTED_MEDIA_TYPE for "a batch that is not application/json".
  for (const ct of ['application/octet-stream', 'application/x-www-form-urlencoded', 'text/plain']) {
    const r = await batch(JSON.stringify({ ops: [{ op: 'put', key: `${P}ct`, value: 'x' }] }), ct)
    t.same(errorSummary(r), { status: 415, code: 'GW_ERR_UNSUPPORTED_MEDIA_TYPE', shape: 'gateway' }, `a batch sent as ${ct}: 415 (got ${r.status} ${r.text.slice(0, 120)})`)
  }
  t.equal(await onMaster(`${P}ct`), null, 'a batch that is not JSON wrote nothing')
})

t.test('helmet headers on API answers', async t => {
  const k = `${P}helmet`
  const answers: Array<[string, Answer]> = [
    ['PUT 201', await api.put(k, 'v')],
    ['GET 200', await api.get(k)],
    ['GET 404', await api.get(`${P}helmet-missing`)],
    ['unknown route 404', await api.request('GET', '/nope')],
    ['batch 200', await batch({ ops: [{ op: 'get', key: k }] })],
    ['batch 400', await batch({ ops: [] })]
  ]
  for (const [what, r] of answers) {
    t.equal(r.headers.get('x-content-type-options'), 'nosniff', `${what}: X-Content-Type-Options: nosniff`)
    const csp = r.headers.get('content-security-policy') ?? ''
    t.match(csp, /(^|;)\s*default-src 'none'(;|$)/, `${what}: CSP default-src 'none'`)
    t.match(csp, /(^|;)\s*frame-ancestors 'none'(;|$)/, `${what}: CSP frame-ancestors 'none'`)
  }
})

t.test('error answers never show a stack trace or an internal address', async t => {
  // A few more error paths on top of everything the tests above provoked.
  const wrongType = `${P}wrongtype`
  const c = topo.client((await topo.masterProc()).port)
  try { await c.hset(wrongType, 'f', 'v') } finally { await c.quit() }
  assertError(t, await api.get(wrongType), 409, 'GW_ERR_WRONG_TYPE', 'GET of a hash')
  assertError(t, await api.put(wrongType, 'x', { headers: { 'if-match': etagOf('x') } }), 409, 'GW_ERR_WRONG_TYPE', 'If-Match PUT on a hash')
  t.equal((await api.put(`${P}too-big`, randomBytes(MIB + 1))).status, 413, 'PUT over the limit')
  t.equal((await api.request('GET', '/kv/%E0%A4%A')).status, 400, 'bad percent-encoding')
  t.equal((await api.request('GET', `/kv/${'k'.repeat(2000)}`)).status, 400, 'key too long')
  // Longer than the router's maxParamLength (KV_MAX_KEY_BYTES * 3 + 64): src/app.ts means these to be
  // 400 too ("Keys are validated by our own byte limit (400), not cut by the router (404)").
  const huge = await api.request('GET', `/kv/${'k'.repeat(5000)}`)
  t.same(errorSummary(huge), { status: 400, code: 'GW_ERR_KEY_INVALID', shape: 'gateway' }, `a 5000-byte key: 400 GW_ERR_KEY_INVALID (got ${huge.status} ${huge.text.slice(0, 80)})`)
  t.equal((await api.request('GET', `${kvPath(`${P}x`)}?consistency=nope`)).status, 400, 'bad query')
  t.equal((await api.request('DELETE', '/kv/_batch')).status, 404, 'no such route')
  t.equal((await api.request('PATCH', kvPath(`${P}x`))).status, 405, 'a method the key route does not take: 405')

  const ports = [...topo.redis, ...topo.sentinels].map(n => n.port)
  const errors = [
    ...api.seen.filter(s => s.status >= 400 && s.path !== '/topology').map(s => ({ what: `${s.method} ${s.path.slice(0, 80)}`, status: s.status, text: s.text })),
    ...rawSeen.filter(s => s.status >= 400)
  ]
  t.ok(errors.length >= 40, `checked ${errors.length} error answers`)
  const leaks = errors.map(e => ({ ...e, leak: leakIn(e.text, ports) })).filter(e => e.leak !== undefined)
  t.same(leaks.map(l => `${l.what} ${l.status}: ${l.leak}: ${l.text.slice(0, 200)}`), [], 'no error body leaks a stack trace or an internal address')
  const badShape = errors.filter(e => e.what.startsWith('HEAD') === false && e.text !== '' && !/^\{"error":\{"code":"GW_ERR_[A-Z_]+","message":"[^"]*"\}\}$/.test(e.text.replace(/\\"/g, "'")))
  t.same(badShape.map(e => `${e.what} ${e.status}: ${e.text.slice(0, 200)}`), [], 'every error body is exactly {error:{code,message}}')
})
