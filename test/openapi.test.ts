// openapi.yaml: (a) it is exactly what the route schemas generate, (b) it is a valid OpenAPI 3.1
// document whose schemas are valid JSON Schema 2020-12, (c) real answers of the running gateway
// (in front of a real Sentinel topology, and in front of nothing at all for the 503s) match it:
// documented status, content type, body schema and response headers.
import { existsSync, readFileSync } from 'node:fs'
import { Validator } from '@seriousme/openapi-schema-validator'
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js'
import t, { type Test } from 'tap'
import { parse } from 'yaml'
import { generateOpenApiYaml, openapiPath } from '../scripts/openapi.js'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { startInProcess } from './helpers/gateway.js'
import { topologyFor } from './helpers/topology.js'
import { freePorts } from './helpers/topology-procs.js'

type SchemaObject = Record<string, unknown>
interface HeaderObject { description?: string; required?: boolean; schema?: SchemaObject; $ref?: string }
interface MediaTypeObject { schema?: SchemaObject }
interface ResponseObject { description: string; headers?: Record<string, HeaderObject>; content?: Record<string, MediaTypeObject> }
interface ParameterObject { name: string; in: string; required?: boolean; schema?: SchemaObject; description?: string }
interface Operation {
  operationId?: string
  summary?: string
  description?: string
  security?: Array<Record<string, string[]>>
  tags?: string[]
  parameters?: ParameterObject[]
  requestBody?: { required?: boolean; content: Record<string, MediaTypeObject> }
  responses: Record<string, ResponseObject>
}
type Method = 'get' | 'head' | 'put' | 'post' | 'delete'
interface OpenApiDoc {
  openapi: string
  info: { title: string; version: string; description?: string; license?: { name: string; identifier?: string } }
  servers?: { url: string }[]
  tags?: { name: string; description?: string }[]
  paths: Record<string, Partial<Record<Method, Operation>>>
  components?: { schemas?: Record<string, SchemaObject>; headers?: Record<string, HeaderObject> }
  security?: Array<Record<string, string[]>>
}

const METHODS: Method[] = ['get', 'head', 'put', 'post', 'delete']
const ERROR_REF = '#/components/schemas/Error'

/** Error answers that deliberately do not use the Error shape. */
/** The Upstash-compatible routes (tag upstash), whose errors have the Upstash shape {"error": "..."}. */
const UPSTASH_OPS = ['POST /', 'POST /pipeline', 'POST /multi-exec', 'GET /{command}', 'POST /{command}']
/** The subscription streams (tag upstash, routes/subscribe.ts). */
const STREAM_OPS = ['GET /subscribe/{channels}', 'POST /subscribe/{channels}', 'GET /psubscribe/{patterns}', 'POST /psubscribe/{patterns}',
  'GET /ssubscribe/{channels}', 'POST /ssubscribe/{channels}']
const NON_ERROR_SHAPED = new Set([
  'GET /readyz 503' // the readiness probe answers { status, reason }
])
/** The error shape of the operations tagged `upstash`: {"error": "..."}. */
const UPSTASH_ERROR_REF = '#/components/schemas/UpstashError'
/** The operations that need no token, ever (`security: []`). */
const OPEN_OPS = ['GET /healthz', 'GET /readyz']

/** Documented answers this test cannot provoke against a healthy local topology. */
const NOT_PROVOKED = new Map([
  ['GET /kv/{key} 500', 'internal error: no reliable trigger'],
  ['HEAD /kv/{key} 500', 'internal error: no reliable trigger'],
  ['PUT /kv/{key} 500', 'internal error: no reliable trigger'],
  ['DELETE /kv/{key} 500', 'internal error: no reliable trigger'],
  ['GET /topology 500', 'internal error: no reliable trigger'],
  ['POST /kv/_batch 500', 'internal error: no reliable trigger'],
  ['GET /metrics 500', 'internal error: no reliable trigger'],
  ['PUT /kv/{key} 504', 'needs replicas that stop confirming mid-write'],
  ['DELETE /kv/{key} 504', 'needs replicas that stop confirming mid-write'],
  ...UPSTASH_OPS.flatMap(op => [
    [`${op} 500`, 'internal error: no reliable trigger'],
    [`${op} 504`, 'needs replicas that stop confirming mid-write (test/upstash-failover.test.ts accepts it during a failover)']
  ] as Array<[string, string]>),
  ...STREAM_OPS.flatMap(op => [
    [`${op} 200`, 'an event stream never ends and this test reads whole bodies (test/pubsub*.test.ts check the streams)'],
    [`${op} 500`, 'internal error: no reliable trigger'],
    [`${op} 503`, 'needs a token with the p right and no node that takes the subscription, or PUBSUB_MAX_STREAMS open streams']
  ] as Array<[string, string]>)
])

const yamlText = existsSync(openapiPath()) ? readFileSync(openapiPath(), 'utf8') : ''
const doc = (parse(yamlText) ?? { paths: {} }) as OpenApiDoc

function operations (): { path: string; method: Method; op: Operation }[] {
  const out: { path: string; method: Method; op: Operation }[] = []
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      const op = item[method]
      if (op !== undefined) out.push({ path, method, op })
    }
  }
  return out
}

/** Every Schema Object of the document, with where it is. */
function schemas (): { where: string; schema: SchemaObject }[] {
  const out: { where: string; schema: SchemaObject }[] = []
  for (const [name, schema] of Object.entries(doc.components?.schemas ?? {})) out.push({ where: `components.schemas.${name}`, schema })
  for (const [name, h] of Object.entries(doc.components?.headers ?? {})) if (h.schema) out.push({ where: `components.headers.${name}`, schema: h.schema })
  for (const { path, method, op } of operations()) {
    const at = `${method.toUpperCase()} ${path}`
    for (const p of op.parameters ?? []) if (p.schema) out.push({ where: `${at} parameter ${p.in}:${p.name}`, schema: p.schema })
    for (const [type, m] of Object.entries(op.requestBody?.content ?? {})) if (m.schema) out.push({ where: `${at} request body ${type}`, schema: m.schema })
    for (const [status, r] of Object.entries(op.responses)) {
      for (const [name, h] of Object.entries(r.headers ?? {})) if (h.schema) out.push({ where: `${at} ${status} header ${name}`, schema: h.schema })
      for (const [type, m] of Object.entries(r.content ?? {})) if (m.schema) out.push({ where: `${at} ${status} ${type}`, schema: m.schema })
    }
  }
  return out
}

/** JSON Schema 2020-12 (the OpenAPI 3.1 dialect), strict, with components.schemas resolvable by their $ref. */
function newAjv (opts: { coerceTypes?: boolean } = {}): Ajv2020 {
  const ajv = new Ajv2020({ strict: true, allErrors: true, ...opts })
  for (const kw of ['example', 'discriminator', 'xml', 'externalDocs']) ajv.addKeyword(kw) // OpenAPI's own keywords
  ajv.addFormat('binary', true) // OpenAPI's format for raw bytes (an annotation: nothing to check)
  for (const [name, schema] of Object.entries(doc.components?.schemas ?? {})) ajv.addSchema(schema, `#/components/schemas/${name}`)
  return ajv
}

t.test('openapi.yaml is generated from the route schemas', async (t) => {
  t.ok(existsSync(openapiPath()), 'openapi.yaml exists: run npm run openapi')
  t.equal(yamlText, await generateOpenApiYaml(), 'openapi.yaml is current: run npm run openapi')
})

t.test('openapi.yaml is a valid OpenAPI 3.1 document', async (t) => {
  const result = await new Validator().validate(yamlText)
  t.ok(result.valid, 'valid against the OpenAPI 3.1 schema', { errors: result.errors })
  t.equal(doc.openapi, '3.1.0')

  const ajv = newAjv()
  for (const { where, schema } of schemas()) {
    t.doesNotThrow(() => ajv.compile(schema), `${where}: a valid JSON Schema 2020-12 whose $refs resolve`)
  }

  t.match(doc.info, { title: String, version: String, description: String }, 'info')
  t.ok((doc.servers ?? []).length > 0, 'servers')
  t.same((doc.servers ?? []).filter(x => !x.url.startsWith('/')), [], 'servers are relative: the gateway that serves the document, no hard-coded host')
  t.match(doc.info.license, { name: String }, 'info.license')
  t.same(doc.security, [{ bearer: [] }], 'a bearer token by default')
  const ids = operations().map(o => o.op.operationId)
  t.same(ids.filter((id, i) => ids.indexOf(id) !== i), [], 'operationIds are unique')
  const tagNames = (doc.tags ?? []).map(x => x.name)
  t.same(doc.components?.schemas?.Error?.required, ['error'], 'components.schemas.Error is the error shape')

  const ops = operations().map(o => `${o.method.toUpperCase()} ${o.path}`)
  for (const route of ['GET /kv/{key}', 'HEAD /kv/{key}', 'PUT /kv/{key}', 'DELETE /kv/{key}', 'GET /topology', 'GET /healthz', 'GET /readyz']) {
    t.ok(ops.includes(route), `${route} is documented`)
  }

  for (const { path, method, op } of operations()) {
    const at = `${method.toUpperCase()} ${path}`
    t.ok(op.summary, `${at} has a summary`)
    t.match(op.operationId ?? '', /^[a-z][A-Za-z]+$/, `${at} has an operationId`)
    t.ok((op.description ?? '').length > 0, `${at} has a description`)
    const open = OPEN_OPS.includes(at)
    t.equal(op.security !== undefined && op.security.length === 0, open, `${at}: ${open ? 'open (security: [])' : 'needs a token when tokens are configured'}`)
    if (!open) t.ok(op.responses['429'], `${at} documents 429 (rate limit, failed authentications)`)
    t.ok(op.tags?.length === 1 && tagNames.includes(op.tags[0] ?? ''), `${at} has one declared tag`)
    for (const name of [...path.matchAll(/\{([^}]+)\}/g)].map(m => m[1])) {
      t.ok(op.parameters?.some(p => p.in === 'path' && p.name === name && p.required === true), `${at} declares path parameter ${name}`)
    }
    for (const [status, r] of Object.entries(op.responses)) {
      t.ok(/^[1-5][0-9][0-9]$/.test(status), `${at} ${status} is an explicit status`)
      t.ok(r.description !== 'Default Response', `${at} ${status} has its own description`)
      if (Number(status) >= 400 && method !== 'head' && !NON_ERROR_SHAPED.has(`${at} ${status}`)) {
        const shape = op.tags?.includes('upstash') === true ? UPSTASH_ERROR_REF : ERROR_REF
        t.same(r.content, { 'application/json': { schema: { $ref: shape } } }, `${at} ${status} answers the ${shape.split('/').pop() ?? ''} shape`)
      }
      if (status === '503' && path.startsWith('/kv/')) t.ok(r.headers?.['retry-after'], `${at} 503 documents Retry-After`)
      if (status === '504') t.ok(r.headers?.['retry-after'], `${at} 504 documents Retry-After`)
      if (status === '429') t.ok(r.headers?.['retry-after'], `${at} 429 documents Retry-After`)
      t.ok(headerOf(r.headers?.['x-request-id'])?.schema, `${at} ${status} declares X-Request-Id`)
      if (method === 'head') t.equal(r.content, undefined, `${at} ${status}: no body`)
    }
  }

  const get = doc.paths['/kv/{key}']?.get
  t.match(get?.responses['200'], { headers: { 'x-served-by': {}, 'x-ttl': {} }, content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } }, 'GET 200: raw bytes, X-Served-By, X-TTL')
  t.match(get?.parameters?.map(p => `${p.in}:${p.name}`).sort(), ['header:if-none-match', 'header:x-sync-token', 'path:key', 'query:consistency', 'query:syncToken'], 'GET parameters')
  const put = doc.paths['/kv/{key}']?.put
  t.match(put?.requestBody, { required: true, content: { 'text/plain': { schema: { type: 'string' } }, 'application/octet-stream': { schema: { type: 'string' } } } }, 'PUT body: text or raw bytes')
  t.ok(put?.requestBody?.content['text/plain'] && !('contentMediaType' in (put.requestBody.content['text/plain'].schema ?? {})), 'PUT text/plain is a text box in /docs, not a file upload')
  t.ok(doc.paths['/kv/_batch']?.post?.responses['415'], 'batch documents 415')
  for (const name of ['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset']) {
    t.ok(headerOf(get?.responses['200']?.headers?.[name])?.schema, `GET /kv/{key} 200 declares ${name}`)
  }
  t.equal(doc.paths['/healthz']?.get?.responses['200']?.headers?.['ratelimit-limit'], undefined, 'the probes are not rate limited: no RateLimit-*')
  t.match(put?.parameters?.map(p => `${p.in}:${p.name}`).sort(), ['header:if-match', 'header:if-none-match', 'path:key', 'query:durability', 'query:ttl'], 'PUT parameters')
  for (const status of ['200', '201']) t.ok(put?.responses[status]?.headers?.['x-sync-token'], `PUT ${status} documents X-Sync-Token`)
  t.ok(put?.responses['201']?.headers?.location, 'PUT 201 documents Location')
  const del = doc.paths['/kv/{key}']?.delete
  t.match(del?.responses['204'], { headers: { 'x-sync-token': {} } }, 'DELETE 204 documents X-Sync-Token')
  t.equal(del?.responses['204']?.content, undefined, 'DELETE 204 has no body')
})

/** A header object, its $ref (components.headers) resolved. */
function headerOf (h: HeaderObject | undefined): HeaderObject | undefined {
  const ref = h?.$ref
  return ref === undefined ? h : doc.components?.headers?.[ref.replace('#/components/headers/', '')]
}

/** Checks real answers against the document and records which documented answers were seen. */
class Conformance {
  readonly seen = new Set<string>()
  private readonly ajv = newAjv()
  private readonly headerAjv = newAjv({ coerceTypes: true })

  /** Reads `res` and checks it; `headers`: response headers the handler always sends for this answer. */
  async check (t: Test, res: Response, path: string, method: Method, want: { status: number; headers?: string[]; body?: Buffer }): Promise<Buffer> {
    const at = `${method.toUpperCase()} ${path}`
    const body = Buffer.from(await res.arrayBuffer())
    const ctx = `${at} -> ${res.status} ${preview(body, res.headers.get('content-type'))}`
    t.equal(res.status, want.status, `${at}: status ${want.status}`, { body: preview(body, res.headers.get('content-type')) })
    const op = doc.paths[path]?.[method]
    if (op === undefined) {
      t.fail(`${at} is not documented`)
      return body
    }
    const key = String(res.status)
    const documented = op.responses[key] ?? op.responses[`${key[0] ?? ''}XX`] ?? op.responses.default
    if (documented === undefined) {
      t.fail(`${at}: status ${res.status} is not documented`, { documented: Object.keys(op.responses), body: ctx })
      return body
    }
    this.seen.add(`${at} ${res.status}`)
    this.body(t, ctx, documented, res.headers.get('content-type'), body, want.body)
    this.headers(t, at, documented, res.headers, want.headers ?? [])
    return body
  }

  /** An answer outside every documented path (the not-found handler): the Error shape as JSON. */
  async checkError (t: Test, res: Response, status: number): Promise<void> {
    const body = Buffer.from(await res.arrayBuffer())
    t.equal(res.status, status)
    this.body(t, `${res.url} -> ${res.status}`, { description: '', content: { 'application/json': { schema: { $ref: ERROR_REF } } } },
      res.headers.get('content-type'), body, undefined)
  }

  private body (t: Test, ctx: string, documented: ResponseObject, contentType: string | null, body: Buffer, expected: Buffer | undefined): void {
    if (documented.content === undefined) {
      t.equal(body.length, 0, `${ctx}: no body, as documented`)
      return
    }
    const essence = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? ''
    const mediaKey = Object.keys(documented.content).find(k => mediaMatches(k, essence))
    if (mediaKey === undefined) {
      t.fail(`${ctx}: content type ${contentType} is not documented`, { documented: Object.keys(documented.content) })
      return
    }
    t.pass(`${ctx}: content type ${essence} documented (${mediaKey})`)
    const schema = documented.content[mediaKey]?.schema
    if (/^application\/(.+\+)?json$/.test(essence)) {
      let json: unknown
      try {
        json = JSON.parse(body.toString('utf8'))
      } catch (err) {
        t.fail(`${ctx}: body is not JSON (${(err as Error).message})`)
        return
      }
      if (schema !== undefined) {
        const validate = this.ajv.compile(schema)
        t.ok(validate(json), `${ctx}: body matches the documented schema`, { errors: validate.errors, json })
      }
    } else if (schema?.type === 'string' && schema.format === 'binary') {
      t.ok(Buffer.isBuffer(body), `${ctx}: raw bytes`)
    } else if (essence === 'text/plain' && schema?.type === 'string') {
      t.ok(body.toString('utf8').length > 0, `${ctx}: text`)
    } else {
      t.fail(`${ctx}: no rule to check a ${mediaKey} body`)
    }
    if (expected !== undefined) t.ok(body.equals(expected), `${ctx}: exactly the expected bytes`)
  }

  private headers (t: Test, at: string, documented: ResponseObject, headers: Headers, always: string[]): void {
    const docHeaders = new Map(Object.entries(documented.headers ?? {}).map(([name, h]) => [name.toLowerCase(), headerOf(h) ?? h]))
    // Every answer carries X-Request-Id (src/app.ts), documented on every response.
    always = always.includes('x-request-id') ? always : [...always, 'x-request-id']
    for (const [name, h] of docHeaders) {
      const value = headers.get(name)
      if (value === null) {
        t.notOk(h.required, `${at}: required header ${name} is present`)
        continue
      }
      if (h.schema === undefined) continue
      const validate: ValidateFunction = this.headerAjv.compile({ type: 'object', properties: { v: h.schema } })
      t.ok(validate({ v: value }), `${at}: header ${name}: ${value} matches its schema`, { errors: validate.errors })
    }
    for (const name of always) {
      t.ok(headers.get(name) !== null, `${at}: sends ${name}`)
      t.ok(docHeaders.has(name), `${at}: ${name} is documented (documented: ${[...docHeaders.keys()].join(', ') || 'none'})`)
    }
  }
}

/** A short printable view of a body: JSON/text as is (cut), anything else as its length. */
function preview (body: Buffer, contentType: string | null): string {
  if (/json|^text\//.test(contentType ?? '')) return body.length > 200 ? `${body.subarray(0, 200).toString()}...` : body.toString()
  return `<${body.length} bytes ${contentType ?? 'without content type'}>`
}

function mediaMatches (documented: string, actual: string): boolean {
  if (documented === '*/*') return true
  if (documented.endsWith('/*')) return actual.startsWith(documented.slice(0, -1))
  return documented.toLowerCase() === actual
}

t.test('real answers match the document', async (t) => {
  const c = new Conformance()
  const K = '/kv/{key}'

  await t.test('against a real Sentinel topology', async (t) => {
    const topo = await topologyFor(t)
    const { url } = await startInProcess(t, topo, { KV_MAX_VALUE_BYTES: '1024', KV_MAX_KEY_BYTES: '64' })
    const req = async (method: string, path: string, init: { headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<Response> =>
      await fetch(`${url}${path}`, {
        method,
        ...(init.headers === undefined ? {} : { headers: init.headers }),
        ...(init.body === undefined ? {} : { body: typeof init.body === 'string' ? init.body : new Uint8Array(init.body) })
      })

    /** GET and its HEAD twin: the same status and headers, HEAD without a body. */
    const getAndHead = async (want: { status: number; headers?: string[]; body?: Buffer }, path: string, init: { headers?: Record<string, string> } = {}): Promise<void> => {
      await c.check(t, await req('GET', path, init), K, 'get', want)
      await c.check(t, await req('HEAD', path, init), K, 'head', { status: want.status, ...(want.headers === undefined ? {} : { headers: want.headers }) })
    }

    // ready: /readyz answers 200 once the gateway has found and pinged the master
    const deadline = Date.now() + 20_000
    let ready: Response
    for (;;) {
      ready = await req('GET', '/readyz')
      if (ready.status === 200 || Date.now() > deadline) break
      await ready.arrayBuffer()
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    await c.check(t, ready, '/readyz', 'get', { status: 200 })
    await c.check(t, await req('GET', '/healthz'), '/healthz', 'get', { status: 200 })
    await c.check(t, await req('GET', '/topology'), '/topology', 'get', { status: 200 })

    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
    const key = `/kv/${encodeURIComponent('openapi/ü key')}`
    // PUT 201 created (raw bytes), 200 replaced (any content type), then GET 200 returns the exact bytes
    await c.check(t, await req('PUT', key, { headers: { 'content-type': 'application/octet-stream', 'if-none-match': '*' }, body: bytes }),
      K, 'put', { status: 201, headers: ['x-sync-token', 'location'] })
    const replaced = await req('PUT', `${key}?durability=replicated`, { headers: { 'content-type': 'application/json', 'if-match': '*' }, body: '{"not":"parsed"}' })
    await c.check(t, replaced, K, 'put', { status: 200, headers: ['x-sync-token'] })
    const syncToken = replaced.headers.get('x-sync-token') ?? ''
    await getAndHead({ status: 200, headers: ['x-served-by'], body: Buffer.from('{"not":"parsed"}') }, `${key}?syncToken=${syncToken}`)
    await c.check(t, await req('PUT', key, { body: bytes }), K, 'put', { status: 200, headers: ['x-sync-token'] }) // no content type at all
    await c.check(t, await req('PUT', `${key}?ttl=300`, { headers: { 'content-type': 'text/plain; charset=utf-8' }, body: bytes }), K, 'put', { status: 200, headers: ['x-sync-token'] })
    const withTtl = await req('GET', `${key}?consistency=strong`)
    t.ok(Number(withTtl.headers.get('x-ttl')) > 0, 'X-TTL is sent for a key with an expiry')
    await c.check(t, withTtl, K, 'get', { status: 200, headers: ['x-served-by', 'x-ttl'], body: bytes })

    // 412 both ways
    await c.check(t, await req('PUT', key, { headers: { 'if-none-match': '*' }, body: 'x' }), K, 'put', { status: 412 })
    await c.check(t, await req('PUT', '/kv/openapi-missing', { headers: { 'if-match': '*' }, body: 'x' }), K, 'put', { status: 412 })
    // 413: larger than KV_MAX_VALUE_BYTES
    await c.check(t, await req('PUT', '/kv/openapi-big', { headers: { 'content-type': 'application/octet-stream' }, body: Buffer.alloc(2048, 1) }), K, 'put', { status: 413 })
    // 415: a Content-Type that is no media type at all
    await c.check(t, await req('PUT', '/kv/openapi-ct', { headers: { 'content-type': '???' }, body: 'x' }), K, 'put', { status: 415 })
    // 400: bad query, bad header combination, key too long
    await c.check(t, await req('PUT', '/kv/openapi-ttl?ttl=0', { body: 'x' }), K, 'put', { status: 400 })
    await c.check(t, await req('PUT', '/kv/openapi-both', { headers: { 'if-match': '*', 'if-none-match': '*' }, body: 'x' }), K, 'put', { status: 400 })
    await getAndHead({ status: 400 }, `/kv/${'k'.repeat(65)}`)
    await getAndHead({ status: 400 }, `${key}?consistency=sometimes`)
    await getAndHead({ status: 400 }, key, { headers: { 'x-sync-token': 'latest' } })
    await c.check(t, await req('DELETE', `${key}?durability=maybe`), K, 'delete', { status: 400 })
    // 409: the key holds a Redis hash
    const master = await topo.master()
    const mc = topo.client(master.port)
    try {
      await mc.hset('openapi-hash', 'f', 'v')
      // A value larger than KV_MAX_VALUE_BYTES (1024 here), written around the gateway.
      await mc.set('openapi-big', 'x'.repeat(2048))
    } finally {
      await mc.quit()
    }
    await getAndHead({ status: 409 }, '/kv/openapi-hash?consistency=strong')
    await getAndHead({ status: 413 }, '/kv/openapi-big?consistency=strong')
    await c.check(t, await req('PUT', '/kv/openapi-hash', { body: 'x' }), K, 'put', { status: 409 })
    // DELETE 204 then 404; GET 404
    await c.check(t, await req('DELETE', key), K, 'delete', { status: 204, headers: ['x-sync-token'] })
    await c.check(t, await req('DELETE', key), K, 'delete', { status: 404 })
    await getAndHead({ status: 404 }, key)
    // 304: the ETag of the current value in If-None-Match
    await req('PUT', key, { body: 'etag-me' })
    const tagged = await req('GET', key)
    const etag = tagged.headers.get('etag') ?? ''
    await tagged.arrayBuffer()
    t.match(etag, /^"[0-9a-f]{40}"$/, 'GET answers a strong ETag')
    await getAndHead({ status: 304, headers: ['etag'] }, key, { headers: { 'if-none-match': etag } })
    // batch: 200 with one result per op, 400 for a bad op, 413 for a body over the limit
    const B = '/kv/_batch'
    const json = { 'content-type': 'application/json' }
    await c.check(t, await req('POST', B, { headers: json, body: JSON.stringify({ ops: [{ op: 'put', key: 'openapi-b', value: 'v' }, { op: 'get', key: 'openapi-b' }, { op: 'delete', key: 'openapi-b' }] }) }), B, 'post', { status: 200 })
    await c.check(t, await req('POST', B, { headers: json, body: JSON.stringify({ ops: [{ op: 'frobnicate', key: 'k' }] }) }), B, 'post', { status: 400 })
    await c.check(t, await req('POST', B, { headers: json, body: JSON.stringify({ ops: [{ op: 'put', key: 'k', value: 'x'.repeat(80_000) }] }) }), B, 'post', { status: 413 })
    await c.check(t, await req('POST', B, { headers: { 'content-type': 'text/plain' }, body: '{"ops":[{"op":"get","key":"k"}]}' }), B, 'post', { status: 415 })
    // 403: a write sent by a browser page on another origin (src/plugins/cross-site.ts)
    const crossSite = { ...json, 'sec-fetch-site': 'cross-site', origin: 'http://elsewhere.example' }
    await c.check(t, await req('POST', B, { headers: crossSite, body: '{"ops":[{"op":"get","key":"k"}]}' }), B, 'post', { status: 403 })
    await c.check(t, await req('POST', '/pipeline', { headers: crossSite, body: '[["GET","k"]]' }), '/pipeline', 'post', { status: 403 })
    // 401/403: a gateway with tokens (a read-only token scoped to "scope:")
    const secured = await startInProcess(t, topo, { AUTH_TOKENS: 'openapi-rw-token:rw,openapi-ro-token:r:scope:,openapi-p-token:p:scope:' })
    const sreq = async (method: string, path: string, headers: Record<string, string> = {}): Promise<Response> =>
      await fetch(`${secured.url}${path}`, { method, headers, ...(method === 'PUT' ? { body: 'x' } : {}) })
    const ro = { authorization: 'Bearer openapi-ro-token' }
    for (const method of ['get', 'head', 'put', 'delete'] as const) {
      await c.check(t, await sreq(method.toUpperCase(), '/kv/scope%3Ax'), K, method, { status: 401, headers: ['www-authenticate'] })
      await c.check(t, await sreq(method.toUpperCase(), '/kv/other', ro), K, method, { status: 403 })
    }
    await c.check(t, await sreq('GET', '/topology'), '/topology', 'get', { status: 401, headers: ['www-authenticate'] })
    await c.check(t, await sreq('GET', '/metrics'), '/metrics', 'get', { status: 401, headers: ['www-authenticate'] })
    // A token without the ops right (o): 403 on the operations routes.
    await c.check(t, await sreq('GET', '/topology', { authorization: 'Bearer openapi-rw-token' }), '/topology', 'get', { status: 403 })
    await c.check(t, await sreq('GET', '/metrics', { authorization: 'Bearer openapi-rw-token' }), '/metrics', 'get', { status: 403 })
    await c.check(t, await req('GET', '/metrics'), '/metrics', 'get', { status: 200 })
    await c.check(t, await fetch(`${secured.url}${B}`, { method: 'POST', headers: json, body: '{"ops":[{"op":"get","key":"k"}]}' }), B, 'post', { status: 401, headers: ['www-authenticate'] })
    // Upstash-compatible routes: {"result": ...} / {"error": "..."} (a write answers upstash-sync-token)
    const up = async (path: string, body: string, headers: Record<string, string> = json): Promise<Response> => await req('POST', path, { headers, body })
    const big = 'x'.repeat(80_000)
    const written = ['upstash-sync-token', 'x-served-by']
    await c.check(t, await up('/', '["SET","openapi-up","v"]'), '/', 'post', { status: 200, headers: written })
    await c.check(t, await up('/', '["GET"]'), '/', 'post', { status: 400 })
    await c.check(t, await up('/', JSON.stringify(['SET', 'openapi-up', big])), '/', 'post', { status: 413 })
    await c.check(t, await up('/pipeline', '[["SET","openapi-up","w"],["GET","openapi-up"],["NOSUCH"]]'), '/pipeline', 'post', { status: 200, headers: written })
    await c.check(t, await up('/pipeline', '[]'), '/pipeline', 'post', { status: 400 })
    await c.check(t, await up('/pipeline', JSON.stringify([['SET', 'openapi-up', big]])), '/pipeline', 'post', { status: 413 })
    await c.check(t, await up('/multi-exec', '[["SET","openapi-up","x"],["GET","openapi-up"]]'), '/multi-exec', 'post', { status: 200, headers: written })
    await c.check(t, await up('/multi-exec', '[["SET","openapi-up"]]'), '/multi-exec', 'post', { status: 400 })
    await c.check(t, await up('/multi-exec', JSON.stringify([['SET', 'openapi-up', big]])), '/multi-exec', 'post', { status: 413 })
    await c.check(t, await req('GET', '/get/openapi-up'), '/{command}', 'get', { status: 200, headers: ['x-served-by'] })
    await c.check(t, await req('GET', '/get'), '/{command}', 'get', { status: 400 })
    await c.check(t, await req('POST', '/set/openapi-up?EX=60', { headers: { 'content-type': 'application/octet-stream' }, body: bytes }), '/{command}', 'post', { status: 200, headers: written })
    await c.check(t, await req('POST', '/set', { body: 'v' }), '/{command}', 'post', { status: 400 })
    await c.check(t, await req('POST', '/set/openapi-up', { body: big }), '/{command}', 'post', { status: 413 })
    const sup = async (method: string, path: string, headers: Record<string, string>, body?: string): Promise<Response> =>
      await fetch(`${secured.url}${path}`, { method, headers, ...(body === undefined ? {} : { body }) })
    for (const [path, body] of [['/', '["GET","scope:x"]'], ['/pipeline', '[["GET","scope:x"]]'], ['/multi-exec', '[["GET","scope:x"]]']] as const) {
      await c.check(t, await sup('POST', path, json, body), path, 'post', { status: 401, headers: ['www-authenticate'] })
    }
    await c.check(t, await sup('POST', '/', { ...json, ...ro }, '["SET","scope:x","v"]'), '/', 'post', { status: 403 })
    await c.check(t, await sup('POST', '/multi-exec', { ...json, ...ro }, '[["GET","scope:x"],["SET","scope:x","v"]]'), '/multi-exec', 'post', { status: 403 })
    await c.check(t, await sup('GET', '/get/scope%3Ax', {}), '/{command}', 'get', { status: 401, headers: ['www-authenticate'] })
    await c.check(t, await sup('GET', '/get/other', ro), '/{command}', 'get', { status: 403 })
    await c.check(t, await sup('POST', '/set/scope%3Ax', {}, 'v'), '/{command}', 'post', { status: 401, headers: ['www-authenticate'] })
    await c.check(t, await sup('POST', '/set/scope%3Ax', ro, 'v'), '/{command}', 'post', { status: 403 })
    // Subscription streams: 401, 403 (no p right), 400 (an empty name)
    for (const [kind, op] of [['subscribe', '/subscribe/{channels}'], ['psubscribe', '/psubscribe/{patterns}'], ['ssubscribe', '/ssubscribe/{channels}']] as const) {
      for (const method of ['GET', 'POST'] as const) {
        const m = method.toLowerCase() as Method
        await c.check(t, await sup(method, `/${kind}/scope%3Ax`, {}), op, m, { status: 401, headers: ['www-authenticate'] })
        await c.check(t, await sup(method, `/${kind}/scope%3Ax`, ro), op, m, { status: 403 })
        await c.check(t, await sup(method, `/${kind}/scope:a//scope:b`, ro), op, m, { status: 400 })
        // 406: a token that may subscribe, but a client that did not ask for an event stream
        await c.check(t, await sup(method, `/${kind}/scope%3Ax`, { authorization: 'Bearer openapi-p-token', accept: 'application/json' }), op, m, { status: 406 })
      }
    }
    // 429: an address over AUTH_FAILURES_MAX (1 here) is refused on every route that takes a token, even with a good one
    const blocked = await startInProcess(t, topo, { AUTH_TOKENS: 'openapi-all-token:rwo', AUTH_FAILURES_MAX: '1' })
    const breq = async (method: string, path: string, body?: string): Promise<Response> => await fetch(`${blocked.url}${path}`,
      { method, headers: { authorization: 'Bearer openapi-all-token', 'content-type': 'application/json' }, ...(body === undefined ? {} : { body }) })
    await c.check(t, await fetch(`${blocked.url}/kv/k`, { headers: { authorization: 'Bearer not-a-token' } }), K, 'get', { status: 401, headers: ['www-authenticate'] })
    const everyRoute: Array<[string, string, string, string | undefined]> = [
      ['GET', '/kv/k', K, undefined], ['HEAD', '/kv/k', K, undefined], ['PUT', '/kv/k', K, 'x'], ['DELETE', '/kv/k', K, undefined],
      ['POST', B, B, '{"ops":[{"op":"get","key":"k"}]}'], ['GET', '/topology', '/topology', undefined], ['GET', '/metrics', '/metrics', undefined],
      ['POST', '/', '/', '["GET","k"]'], ['POST', '/pipeline', '/pipeline', '[["GET","k"]]'], ['POST', '/multi-exec', '/multi-exec', '[["GET","k"]]'],
      ['GET', '/get/k', '/{command}', undefined], ['POST', '/set/k', '/{command}', 'v'],
      ['GET', '/subscribe/k', '/subscribe/{channels}', undefined], ['POST', '/subscribe/k', '/subscribe/{channels}', '[]'],
      ['GET', '/psubscribe/k*', '/psubscribe/{patterns}', undefined], ['POST', '/psubscribe/k*', '/psubscribe/{patterns}', '[]'],
      ['GET', '/ssubscribe/k', '/ssubscribe/{channels}', undefined], ['POST', '/ssubscribe/k', '/ssubscribe/{channels}', '[]']
    ]
    for (const [method, path, op, body] of everyRoute) {
      await c.check(t, await breq(method, path, body), op, method.toLowerCase() as Method, { status: 429, headers: ['retry-after'] })
    }
    await c.check(t, await fetch(`${blocked.url}/healthz`), '/healthz', 'get', { status: 200 })
    // RateLimit-* on the rate-limited routes (RATE_LIMIT_MAX set), none on the probes
    const limited = await startInProcess(t, topo, { RATE_LIMIT_MAX: '1000' })
    const rl = ['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset']
    await c.check(t, await fetch(`${limited.url}/kv/openapi-rl`, { method: 'PUT', body: 'v' }), K, 'put', { status: 201, headers: ['x-sync-token', ...rl] })
    await c.check(t, await fetch(`${limited.url}/kv/openapi-rl?consistency=strong`), K, 'get', { status: 200, headers: rl })
    await c.check(t, await fetch(`${limited.url}/kv/openapi-rl`, { method: 'DELETE' }), K, 'delete', { status: 204, headers: rl })
    await c.check(t, await fetch(`${limited.url}${B}`, { method: 'POST', headers: json, body: '{"ops":[{"op":"get","key":"k"}]}' }), B, 'post', { status: 200, headers: rl })
    await c.check(t, await fetch(`${limited.url}/get/k`), '/{command}', 'get', { status: 200, headers: rl })
    const probe = await fetch(`${limited.url}/healthz`)
    t.equal(probe.headers.get('ratelimit-limit'), null, '/healthz is not rate limited')
    await c.check(t, probe, '/healthz', 'get', { status: 200 })
    // not a route: the not-found handler answers the Error shape
    await c.checkError(t, await req('GET', '/no/such/route'), 404)
    await c.checkError(t, await req('POST', key, { body: 'x' }), 405)
  })

  await t.test('in front of sentinels that do not answer (503)', async (t) => {
    const [deadPort] = await freePorts(1)
    const app = await buildApp(loadConfig({
      REDIS_SENTINELS: `127.0.0.1:${deadPort}`, LOG_LEVEL: 'silent', REQUEST_RETRY_BUDGET_MS: '300', REDIS_CONNECT_TIMEOUT_MS: '200'
    }))
    t.teardown(async () => await app.close())
    const url = await app.listen({ host: '127.0.0.1', port: 0 })
    await c.check(t, await fetch(`${url}/readyz`), '/readyz', 'get', { status: 503 })
    await c.check(t, await fetch(`${url}/kv/k`), K, 'get', { status: 503, headers: ['retry-after'] })
    await c.check(t, await fetch(`${url}/kv/k`, { method: 'HEAD' }), K, 'head', { status: 503, headers: ['retry-after'] })
    await c.check(t, await fetch(`${url}/kv/k`, { method: 'PUT', body: 'x' }), K, 'put', { status: 503, headers: ['retry-after'] })
    await c.check(t, await fetch(`${url}/kv/k`, { method: 'DELETE' }), K, 'delete', { status: 503, headers: ['retry-after'] })
    await c.check(t, await fetch(`${url}/topology`), '/topology', 'get', { status: 200 })
    const post = async (path: string, body: string): Promise<Response> => await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    await c.check(t, await post('/', '["SET","k","v"]'), '/', 'post', { status: 503, headers: ['retry-after'] })
    await c.check(t, await post('/pipeline', '[["GET","k"]]'), '/pipeline', 'post', { status: 503, headers: ['retry-after'] })
    await c.check(t, await post('/multi-exec', '[["INCR","k"]]'), '/multi-exec', 'post', { status: 503, headers: ['retry-after'] })
    await c.check(t, await fetch(`${url}/get/k`), '/{command}', 'get', { status: 503, headers: ['retry-after'] })
    await c.check(t, await fetch(`${url}/set/k`, { method: 'POST', body: 'v' }), '/{command}', 'post', { status: 503, headers: ['retry-after'] })
  })

  // every documented answer was seen, or is listed as not provokable here (with the reason)
  const documented = operations().flatMap(({ path, method, op }) => Object.keys(op.responses).map(s => `${method.toUpperCase()} ${path} ${s}`))
  const missing = documented.filter(k => !c.seen.has(k) && !NOT_PROVOKED.has(k))
  t.same(missing, [], 'every documented status was produced by a real request: add one above, or list it in NOT_PROVOKED with the reason')
  const stale = [...NOT_PROVOKED.keys()].filter(k => !documented.includes(k) || c.seen.has(k))
  t.same(stale, [], 'NOT_PROVOKED lists only documented answers that were not produced')
})
