/**
 * src/lambda.ts against a real Sentinel topology: hand-built API Gateway HTTP API (payload format
 * 2.0) events go through the Lambda handler; binary values must round-trip byte-exact through
 * base64 (isBase64Encoded) both ways, and the JSON error shape must come back as text. Keys holding
 * `/ ? # %` and non-ASCII round-trip exactly through every front door (HTTP API payload 2.0 and 1.0,
 * REST API, Function URL, ALB), each event shaped as that front door delivers it (test/helpers/lambda-events.ts).
 */
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda'
import t from 'tap'
import { ConfigError, loadConfig } from '../src/config.js'
import { createHandler } from '../src/lambda.js'
import { gatewayEnv } from './helpers/gateway.js'
import {
  eventFor, FRONT_DOORS, HTTP_API_CAPTURES, httpApiPath, keyPath, v2Event as httpApiV2Event, type EventOptions
} from './helpers/lambda-events.js'
import { pollUntil } from './helpers/kv-client.js'
import { topologyFor } from './helpers/topology.js'

const topo = await topologyFor(t)
const lambda = createHandler(loadConfig(gatewayEnv(topo)))
t.teardown(lambda.close)
/** Unique per run, so keys never collide with another file's or an earlier run's. */
const P = `lambda:${process.pid}:${Date.now()}:`
const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
const context = { awsRequestId: 'local', functionName: 'sentinel-kv-gateway' } as unknown as Context

/** An API Gateway HTTP API (payload 2.0) event for a request the client sent to `path` (encoded). */
const v2Event = (method: string, path: string, opts: EventOptions = {}): APIGatewayProxyEventV2 => httpApiV2Event('http-api-v2', method, path, opts)
const kvPath = (key: string): string => keyPath('http-api-v2', key)

async function onMaster (key: string): Promise<Buffer | null> {
  const c = topo.client((await topo.master()).port)
  try { return await c.getBuffer(key) } finally { await c.quit() }
}

t.test('PUT a base64 binary body, GET it back base64, 404 as JSON, DELETE', async t => {
  const key = `${P}bytes`
  const put = await lambda.handler(v2Event('PUT', kvPath(key), {
    body: ALL_BYTES, headers: { 'content-type': 'application/octet-stream' }
  }), context)
  t.equal(put.statusCode, 201, 'PUT creates: 201')
  t.equal(put.isBase64Encoded, false, 'the JSON answer is not base64')
  t.match(put.headers['content-type'], /^application\/json/)
  const body = JSON.parse(put.body) as { result: string; syncToken: string; replicas: number }
  t.equal(body.result, 'created')
  t.equal(body.replicas, 2, 'both replicas confirmed the write')
  t.equal(put.headers['x-sync-token'], body.syncToken)
  t.same(await onMaster(key), ALL_BYTES, 'the master holds exactly the 256 byte values')

  const get = await lambda.handler(v2Event('GET', kvPath(key)), context)
  t.equal(get.statusCode, 200)
  t.equal(get.isBase64Encoded, true, 'the octet-stream answer is base64-encoded for API Gateway')
  t.same(Buffer.from(get.body, 'base64'), ALL_BYTES, 'the body decodes to the same bytes')
  t.equal(get.headers['content-type'], 'application/octet-stream')
  t.match(get.headers['x-served-by'], /^(replica|master)$/, 'x-served-by is present')
  t.match(get.headers.etag, /^"[0-9a-f]{40}"$/)

  const missing = await lambda.handler(v2Event('GET', kvPath(`${P}missing`)), context)
  t.equal(missing.statusCode, 404)
  t.equal(missing.isBase64Encoded, false, 'errors come back as text')
  t.match(missing.headers['content-type'], /^application\/json/)
  const err = JSON.parse(missing.body) as { error: { code: string; message: string } }
  t.same(Object.keys(err), ['error'], 'body has exactly the key "error"')
  t.same(Object.keys(err.error).sort(), ['code', 'message'])
  t.equal(err.error.code, 'GW_ERR_KEY_NOT_FOUND')

  const del = await lambda.handler(v2Event('DELETE', kvPath(key)), context)
  t.equal(del.statusCode, 204)
  t.equal(del.body, '', 'DELETE answers an empty body')
  t.equal(await onMaster(key), null, 'the key is gone from the master')
  const after = await lambda.handler(v2Event('GET', kvPath(key), { query: { consistency: 'strong' } }), context)
  t.equal(after.statusCode, 404, 'GET after DELETE: 404')
})

t.test('larger random values, text bodies, query parameters and the request id', async t => {
  const key = `${P}random`
  const value = Buffer.from(Array.from({ length: 64 * 1024 }, () => Math.floor(Math.random() * 256)))
  const put = await lambda.handler(v2Event('PUT', kvPath(key), {
    body: value, query: { ttl: '300' }, headers: { 'content-type': 'application/octet-stream' }
  }), context)
  t.equal(put.statusCode, 201)
  const get = await lambda.handler(v2Event('GET', kvPath(key), { query: { consistency: 'strong' }, requestId: 'apigw-req-1' }), context)
  t.equal(get.statusCode, 200)
  t.same(Buffer.from(get.body, 'base64'), value, '64 KiB of random bytes round-trip')
  t.equal(get.headers['x-served-by'], 'master', '?consistency=strong reached the route')
  t.ok(Number(get.headers['x-ttl']) > 0 && Number(get.headers['x-ttl']) <= 300, '?ttl=300 was applied')
  t.equal(get.headers['x-request-id'], 'apigw-req-1', 'the API Gateway request id becomes the gateway request id')

  // A text body arrives without base64 (isBase64Encoded false): stored as its UTF-8 bytes.
  const text = 'héllo, wörld ✓'
  const replaced = await lambda.handler(v2Event('PUT', kvPath(key), { body: text, headers: { 'content-type': 'text/plain; charset=utf-8' } }), context)
  t.equal(replaced.statusCode, 200, 'the second PUT replaces: 200')
  t.same(await onMaster(key), Buffer.from(text, 'utf8'))
  const got = await lambda.handler(v2Event('GET', kvPath(key), { query: { consistency: 'strong' } }), context)
  t.equal(Buffer.from(got.body, 'base64').toString('utf8'), text)

  const noRoute = await lambda.handler(v2Event('GET', '/nope'), context)
  t.equal(noRoute.statusCode, 404)
  t.equal((JSON.parse(noRoute.body) as { error: { code: string } }).error.code, 'GW_ERR_NOT_FOUND')
})

t.test('the HTTP API model of the test events matches the live captures', async t => {
  for (const [sent, delivered] of HTTP_API_CAPTURES) t.equal(httpApiPath(sent), delivered, `${sent} -> ${String(delivered)}`)
})

/** Keys no front door may change: every character the path could lose, and non-ASCII. */
const SPECIAL_KEYS = ['a/b/c', 'what?x=1&y=2', 'tag#frag', 'per%cent%41%2F', 'ünïcödé λ 世界 ✓', ' /?#%+&=;:@ mixed ']

t.test('keys holding / ? # % and non-ASCII round-trip exactly through every front door', async t => {
  for (const door of FRONT_DOORS) {
    await t.test(door, async t => {
      for (const [i, name] of SPECIAL_KEYS.entries()) {
        const key = `${P}${door}:${name}`
        const value = `${door} value ${i}`
        const path = keyPath(door, key)
        const put = await lambda.handler(eventFor(door, 'PUT', path, { body: value, headers: { 'content-type': 'text/plain' } }), context)
        t.equal(put.statusCode, 201, `PUT ${JSON.stringify(name)}: 201 (${put.body})`)
        t.same(await onMaster(key), Buffer.from(value), `the master holds ${JSON.stringify(key)} itself`)
        const get = await lambda.handler(eventFor(door, 'GET', path, { query: { consistency: 'strong' } }), context)
        t.equal(get.statusCode, 200, `GET ${JSON.stringify(name)}: 200`)
        t.equal(Buffer.from(get.body, 'base64').toString(), value, 'GET answers the value PUT stored')
        const del = await lambda.handler(eventFor(door, 'DELETE', path), context)
        t.equal(del.statusCode, 204, `DELETE ${JSON.stringify(name)}: 204`)
        t.equal(await onMaster(key), null, 'gone from the master')
      }
    })
  }
  const c = topo.client((await topo.master()).port)
  try {
    for (const door of FRONT_DOORS) t.same(await c.keys(`${P}${door}:*`), [], `${door}: no other key was written (a cut or mis-decoded path would leave one)`)
  } finally { await c.quit() }
})

t.test('payload 2.0: the query comes from the encoded rawQueryString, not queryStringParameters', async t => {
  const key = `${P}query`
  const event = httpApiV2Event('http-api-v2', 'PUT', kvPath(key), { body: 'q', query: { ttl: '120' } })
  delete event.queryStringParameters
  t.equal((await lambda.handler(event, context)).statusCode, 201)
  const c = topo.client((await topo.master()).port)
  try {
    const ttl = await c.ttl(key)
    t.ok(ttl > 0 && ttl <= 120, `?ttl=120 applied from rawQueryString alone (ttl ${ttl})`)
  } finally { await c.quit() }
})

t.test('a bad configuration fails the invocation, and the next invocation tries again', async t => {
  let builds = 0
  const broken = createHandler(() => { builds++; return loadConfig({}) })
  t.teardown(broken.close)
  for (let i = 0; i < 2; i++) {
    const err = await broken.handler(v2Event('GET', '/healthz'), context).then(() => null, (e: unknown) => e)
    t.ok(err instanceof ConfigError, `invocation ${i + 1} rejects with the ConfigError`)
    t.match(err, { code: 'GW_ERR_CONFIG_INVALID', message: /REDIS_SENTINELS/ })
  }
  t.equal(builds, 2, 'a failed build is not cached')
})

t.test('the exported handler reads its configuration from process.env on first use', async t => {
  const saved = { ...process.env }
  t.teardown(() => { process.env = saved })
  Object.assign(process.env, gatewayEnv(topo))
  const mod = await import('../src/lambda.js')
  t.teardown(mod.gateway.close)
  // Ready once the master's own role check has answered (a busy machine can delay the first one).
  const { value: health } = await pollUntil(5000, 50, async () => {
    const r = await mod.handler(v2Event('GET', '/readyz'), context)
    return r.statusCode === 200 ? r : undefined
  })
  t.equal(health?.statusCode, 200, '/readyz through the default handler')
})
