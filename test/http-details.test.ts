/**
 * HTTP details a client or a browser meets at the edges (issue 13), against one real Sentinel
 * topology: a 304 has no body headers; batch values that are not UTF-8 come back base64 and say
 * so, invalid base64 is refused; other methods on a key answer 405 with Allow; an OPTIONS that is
 * not a preflight, a path escaping /docs/static and every other refusal answer the JSON error
 * shape with the code of their status; X-Cache is readable by browser scripts.
 */
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { ERROR_CODES } from '../src/errors.js'
import { rawRequest, type RawAnswer } from './helpers/edge-http.js'
import { startInProcess } from './helpers/gateway.js'
import { KvClient, kvPath } from './helpers/kv-client.js'
import { topologyFor } from './helpers/topology.js'

const ORIGIN = 'http://app.example'
const topo = await topologyFor(t)
const gw = await startInProcess(t, topo, { CORS_ORIGINS: ORIGIN })
const api = new KvClient(gw.url)
const P = `details:${process.pid}:${Date.now()}:`

async function onMaster (key: string): Promise<Buffer | null> {
  const c = topo.client((await topo.masterProc()).port)
  try { return await c.getBuffer(key) } finally { await c.quit() }
}

interface BatchResult { status: number; value?: string; encoding?: string; error?: { code: string } }
async function batch (body: unknown): Promise<{ status: number; json: { results?: BatchResult[]; error?: { code: string } } }> {
  const r = await api.request('POST', '/kv/_batch', { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
  return { status: r.status, json: r.json as { results?: BatchResult[]; error?: { code: string } } }
}

/** The answer is our JSON error with a code whose status is the answer's status. */
function isGatewayError (t: Test, r: RawAnswer, status: number, code: string, what: string): void {
  t.equal(r.status, status, `${what}: ${status}`)
  t.match(r.headers['content-type'] ?? '', /^application\/json/, `${what}: JSON`)
  let json: { error?: { code?: string; message?: string } } = {}
  try { json = JSON.parse(r.body.toString('utf8')) } catch { t.fail(`${what}: not JSON: ${r.body.toString('utf8').slice(0, 120)}`) }
  t.equal(json.error?.code, code, `${what}: code ${code}`)
  t.equal(ERROR_CODES[json.error?.code as keyof typeof ERROR_CODES], r.status, `${what}: the code's own status is the answer's status`)
  t.equal(typeof json.error?.message, 'string', `${what}: a message`)
}

t.test('304: no body, and no Content-Type or Content-Length either', async t => {
  const k = `${P}304`
  t.equal((await api.put(k, 'cached')).status, 201)
  const etag = (await rawRequest(gw.url, 'GET', kvPath(k))).headers.etag ?? ''
  for (const method of ['GET', 'HEAD']) {
    const r = await rawRequest(gw.url, method, kvPath(k), { 'If-None-Match': etag })
    t.equal(r.status, 304, `${method} with the current ETag: 304`)
    t.equal(r.body.length, 0, `${method}: no body on the wire`)
    t.equal(r.headers['content-type'], undefined, `${method}: no Content-Type`)
    t.equal(r.headers['content-length'], undefined, `${method}: no Content-Length`)
    t.equal(r.headers.etag, etag, `${method}: the ETag is repeated`)
  }
})

t.test('batch: a value that is not UTF-8 comes back base64 and says so', async t => {
  const bin = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0x41])
  const k = `${P}bin`
  t.equal((await api.put(k, bin)).status, 201)
  const text = `${P}text`
  t.equal((await api.put(text, 'héllo ✓')).status, 201)
  const r = await batch({ ops: [{ op: 'get', key: k }, { op: 'get', key: text }] })
  t.equal(r.status, 200)
  const [b, s] = r.json.results ?? []
  t.equal(b?.encoding, 'base64', 'the binary value says it is base64')
  t.ok(Buffer.from(b?.value ?? '', 'base64').equals(bin), 'and decodes to the exact bytes')
  t.equal(s?.encoding, undefined, 'a UTF-8 value has no encoding field')
  t.equal(s?.value, 'héllo ✓', 'and comes back as text')
  const asked = await batch({ ops: [{ op: 'get', key: k }], encoding: 'base64' })
  t.equal(asked.json.results?.[0]?.encoding, undefined, 'with "encoding": "base64" asked for, no per-value note')
  t.ok(Buffer.from(asked.json.results?.[0]?.value ?? '', 'base64').equals(bin))
})

t.test('batch: invalid base64 in a put is 400 and runs nothing', async t => {
  for (const bad of ['!!!not base64***', 'abc', 'YWJj=', 'YW Jj', 'YWJj\n', '-_-_']) {
    const first = `${P}b64-first-${Buffer.from(bad).toString('hex')}`
    const r = await batch({ ops: [{ op: 'put', key: first, value: 'YWJj' }, { op: 'put', key: `${P}b64-bad`, value: bad }], encoding: 'base64' })
    t.equal(r.status, 400, `${JSON.stringify(bad)}: 400`)
    t.equal(r.json.error?.code, 'GW_ERR_BAD_REQUEST', `${JSON.stringify(bad)}: GW_ERR_BAD_REQUEST`)
    t.equal(await onMaster(first), null, `${JSON.stringify(bad)}: the valid op before it did not run`)
  }
  t.equal(await onMaster(`${P}b64-bad`), null, 'nothing stored (no silent "notbase6")')
  const ok = await batch({ ops: [{ op: 'put', key: `${P}b64-ok`, value: 'AAECAw==' }, { op: 'put', key: `${P}b64-empty`, value: '' }], encoding: 'base64' })
  t.same(ok.json.results?.map(x => x.status), [201, 201], 'padded base64 and the empty string are accepted')
  t.ok((await onMaster(`${P}b64-ok`))?.equals(Buffer.from([0, 1, 2, 3])), 'stored decoded')
})

t.test('another method on a key: 405 with Allow, in the JSON shape', async t => {
  for (const method of ['PATCH', 'POST']) {
    const r = await rawRequest(gw.url, method, kvPath(`${P}x`), { 'Content-Type': 'text/plain' }, Buffer.from('v'))
    isGatewayError(t, r, 405, 'GW_ERR_METHOD_NOT_ALLOWED', `${method} /kv/k`)
    t.equal(r.headers.allow, 'GET, HEAD, PUT, DELETE', `${method}: Allow lists the key's methods`)
  }
  t.equal(await onMaster(`${P}x`), null, 'nothing written')
})

t.test('OPTIONS: a preflight works, anything else is a JSON error', async t => {
  const pre = await rawRequest(gw.url, 'OPTIONS', kvPath(`${P}x`), { Origin: ORIGIN, 'Access-Control-Request-Method': 'PUT' })
  t.equal(pre.status, 204, 'a preflight from an allowed origin: 204')
  t.equal(pre.headers['access-control-allow-origin'], ORIGIN)
  isGatewayError(t, await rawRequest(gw.url, 'OPTIONS', kvPath(`${P}x`)), 400, 'GW_ERR_BAD_REQUEST', 'OPTIONS without Origin')
  isGatewayError(t, await rawRequest(gw.url, 'OPTIONS', '/kv/_batch', { Origin: ORIGIN }), 400, 'GW_ERR_BAD_REQUEST', 'OPTIONS without Access-Control-Request-Method')
})

t.test('paths under /docs/static: JSON errors with the code of their status', async t => {
  isGatewayError(t, await rawRequest(gw.url, 'GET', '/docs/static/../../package.json'), 403, 'GW_ERR_FORBIDDEN', 'a path escaping /docs/static')
  isGatewayError(t, await rawRequest(gw.url, 'GET', '/docs/static/%2e%2e/%2e%2e/package.json'), 403, 'GW_ERR_FORBIDDEN', 'the same, percent-encoded')
  isGatewayError(t, await rawRequest(gw.url, 'GET', '/docs/static/no-such-file.js'), 404, 'GW_ERR_NOT_FOUND', 'a missing file')
  const css = await rawRequest(gw.url, 'GET', '/docs/static/swagger-ui.css')
  t.equal(css.status, 200, 'a real asset is served')
})

t.test('X-Cache is exposed to browser scripts, like the other X- headers', async t => {
  const k = `${P}cache`
  t.equal((await api.put(k, 'v')).status, 201)
  const r = await rawRequest(gw.url, 'GET', kvPath(k), { Origin: ORIGIN })
  t.equal(r.status, 200)
  const exposed = (r.headers['access-control-expose-headers'] ?? '').split(',').map(h => h.trim().toLowerCase())
  for (const h of ['x-cache', 'x-served-by', 'x-request-id', 'etag']) t.ok(exposed.includes(h), `${h} is exposed`)
  t.match(r.headers['x-cache'] ?? '', /^(hit|miss|bypass)$/, 'and X-Cache is sent')
})

t.test('odd requests all answer the JSON shape with the code of their status', async t => {
  const cases: Array<[string, string, Record<string, string>, Buffer | undefined, number, string]> = [
    ['an unknown route', '/no/such/route', {}, undefined, 404, 'GW_ERR_NOT_FOUND'],
    ['a key over the limit', `/kv/${'k'.repeat(2000)}`, {}, undefined, 400, 'GW_ERR_KEY_INVALID'],
    ['bad percent-encoding', '/kv/%E0%A4%A', {}, undefined, 400, 'GW_ERR_KEY_INVALID'],
    ['a batch that is not JSON', '/kv/_batch', { 'Content-Type': 'text/plain' }, Buffer.from('{}'), 415, 'GW_ERR_UNSUPPORTED_MEDIA_TYPE']
  ]
  for (const [what, path, headers, body, status, code] of cases) {
    isGatewayError(t, await rawRequest(gw.url, body === undefined ? 'GET' : 'POST', path, headers, body), status, code, what)
  }
  const big = await rawRequest(gw.url, 'PUT', kvPath(`${P}big`), { 'Content-Type': 'application/octet-stream' }, randomBytes(1024 * 1024 + 1))
  isGatewayError(t, big, 413, 'GW_ERR_VALUE_TOO_LARGE', 'a value over KV_MAX_VALUE_BYTES')
})

t.test('under load the probes are not shed: /healthz 200, /readyz its own 503, /kv 503 GW_ERR_OVERLOADED', async t => {
  const loaded = await startInProcess(t, topo, { EVENT_LOOP_MAX_DELAY_MS: '100' })
  const get = async (p: string): Promise<{ status: number; json: unknown }> => {
    const r = await fetch(`${loaded.url}${p}`)
    return { status: r.status, json: await r.json() }
  }
  // Stall this process's event loop (the gateway's too) until both a /kv read and /readyz were
  // answered "overloaded": at most 10 rounds. The three requests of a round are not answered at the
  // same instant, so the load check may have cleared between them: rounds are looked at together.
  const rounds: Array<Array<{ status: number; json: unknown }>> = []
  for (let i = 0; i < 10; i++) {
    const until = Date.now() + 300
    while (Date.now() < until) { /* busy */ }
    rounds.push(await Promise.all(['/kv/x', '/readyz', '/healthz'].map(get)))
    if (rounds.some(r => r[0]?.status === 503) && rounds.some(r => r[1]?.status === 503)) break
  }
  const kv = rounds.map(r => r[0]!).find(a => a.status === 503)
  t.ok(kv, 'a /kv read was shed during the stalls')
  t.match(kv?.json, { error: { code: 'GW_ERR_OVERLOADED' } }, '/kv: 503 GW_ERR_OVERLOADED')
  t.same(rounds.map(r => r[1]!).find(a => a.status === 503), { status: 503, json: { status: 'not ready', reason: 'overloaded (event loop lagging)' } }, '/readyz: its own 503 (not a 500)')
  t.same(rounds.map(r => r[1]!.status).filter(s => s !== 200 && s !== 503), [], '/readyz never answered anything but 200 or its own 503')
  const health = rounds.map(r => r[2]!).find(a => a.status !== 200) ?? rounds[0]![2]
  t.same(health, { status: 200, json: { status: 'ok' } }, '/healthz: 200, the process is alive')
})
