/**
 * The OpenAPI document's frame: info, servers, security schemes, tags, and what every route has in
 * common (X-Request-Id on every answer, RateLimit-* on the rate-limited routes, the HEAD operation
 * of GET /kv/{key}). The operations themselves come from the route schemas (routes/*.ts).
 */
import type { FastifyDynamicSwaggerOptions, SwaggerTransform } from '@fastify/swagger'
import type { FastifySchema } from 'fastify'

/** How a client authenticates, as the document states it. */
export const SECURITY_SCHEMES = {
  bearer: {
    type: 'http' as const,
    scheme: 'bearer',
    description: 'A token of AUTH_TOKENS / AUTH_TOKENS_FILE. Its rights decide what it may do: `r` read, `w` write, ' +
      '`x` scripts, `p` publish, `o` operations (/topology, /metrics), and an optional key prefix limits it to keys ' +
      '(and channels) starting with it. Missing or unknown: 401; a right or key it lacks: 403; after AUTH_FAILURES_MAX ' +
      '401s from one address: 429. With no token configured the gateway is open (`r` and `w`, /topology and /metrics ' +
      'open too) and needs no Authorization header. /healthz and /readyz never need a token.'
  },
  upstashQueryToken: {
    type: 'apiKey' as const,
    in: 'query' as const,
    name: '_token',
    description: 'The Upstash-compatible routes also take the token as `?_token=` (as Upstash does): same token, same rights and budget.'
  }
}

/** Sent with every answer, error or not (src/app.ts). */
export const REQUEST_ID_HEADER = {
  'x-request-id': { type: 'string', description: 'The request\'s id: the X-Request-Id the client sent, else a new UUID. Also in the gateway\'s log line of the request' }
}

/** Sent by the rate-limited routes when RATE_LIMIT_MAX is set (IETF draft RateLimit header fields). */
export const RATE_LIMIT_HEADERS = {
  'ratelimit-limit': { type: 'integer', minimum: 0, description: 'Requests allowed per window (RATE_LIMIT_MAX); sent only when rate limiting is on' },
  'ratelimit-remaining': { type: 'integer', minimum: 0, description: 'Requests left in the current window; sent only when rate limiting is on' },
  'ratelimit-reset': { type: 'integer', minimum: 0, description: 'Seconds until the window resets; sent only when rate limiting is on' }
}

type Responses = Record<string, Record<string, unknown>>
type RouteSchema = FastifySchema & { response?: Responses; hide?: boolean }
type BodyContent = Record<string, { schema?: Record<string, unknown> }>

/** Every response with `headers` added (the route's own win on a name clash). */
function withHeaders (responses: Responses, headers: Record<string, unknown>): Responses {
  return Object.fromEntries(Object.entries(responses).map(([status, r]) =>
    [status, { ...r, headers: { ...headers, ...(r.headers as Record<string, unknown> | undefined) } }]))
}

/**
 * Raw-byte request bodies (a media type whose schema says `contentMediaType`) are documented as
 * strings. The route cannot declare `type: string` itself: Fastify would validate the Buffer its
 * raw parser hands over against it. A text media type drops `contentMediaType` (it repeats the media
 * type, and swagger-ui would offer a file upload instead of a text box).
 */
function rawBodies (body: unknown): unknown {
  const content = (body as { content?: BodyContent } | undefined)?.content
  if (content === undefined) return body
  return {
    content: Object.fromEntries(Object.entries(content).map(([type, media]) => {
      if (media.schema?.contentMediaType === undefined || media.schema.type !== undefined) return [type, media]
      const { contentMediaType, ...rest } = media.schema
      return [type, { ...media, schema: { type: 'string', ...(type.startsWith('text/') ? {} : { contentMediaType }), ...rest } }]
    }))
  }
}

/**
 * The document of one route, as @fastify/swagger's `transform`: the route schema plus what every
 * route has in common. Exported for the Upstash routes, which document through their own transform.
 */
export function documentRoute ({ schema: given, url, route }: { schema: FastifySchema | undefined; url: string; route: { method: string | string[]; config?: unknown } }): { schema: FastifySchema | undefined; url: string } {
  const schema = given as RouteSchema | undefined
  if (schema === undefined || schema.hide === true || schema.response === undefined) return { schema, url }
  const rateLimited = (route.config as { rateLimit?: unknown } | undefined)?.rateLimit !== false
  const doc: RouteSchema = {
    ...schema,
    ...(schema.body === undefined ? {} : { body: rawBodies(schema.body) }),
    response: withHeaders(schema.response, { ...REQUEST_ID_HEADER, ...(rateLimited ? RATE_LIMIT_HEADERS : {}) })
  }
  return { schema: doc, url }
}

/** The common headers, each declared once under components.headers. */
const SHARED_HEADERS: Record<string, string> = {
  'x-request-id': 'RequestId',
  'ratelimit-limit': 'RateLimitLimit',
  'ratelimit-remaining': 'RateLimitRemaining',
  'ratelimit-reset': 'RateLimitReset'
}

interface Response { description: string; headers?: Record<string, unknown>; content?: unknown }
interface Operation { operationId?: string; summary?: string; description?: string; responses?: Record<string, Response> }
interface Doc { components?: { headers?: Record<string, unknown> }; paths?: Record<string, Record<string, Operation>> }

/**
 * A route for GET and HEAD (GET /kv/{key}) gives both methods the same operation: HEAD becomes its
 * own, with its own operationId and no body in any answer.
 */
export function headTwins (doc: Doc): Doc {
  for (const item of Object.values(doc.paths ?? {})) {
    const get = item.get
    const head = item.head
    if (get === undefined || head === undefined || head.operationId !== get.operationId) continue
    item.head = {
      ...get,
      ...(get.operationId === undefined ? {} : { operationId: get.operationId.replace(/^get/, 'head') }),
      summary: `${get.summary ?? ''} (headers only)`.trim(),
      description: `The answer a GET would give, status and headers, without the body (a 200 says the value's size in Content-Length). ${get.description ?? ''}`.trim(),
      responses: Object.fromEntries(Object.entries(get.responses ?? {}).map(([status, { content: _content, ...rest }]) => [status, rest]))
    }
  }
  return doc
}

/** Replaces every copy of a common header by a reference to its one declaration (a shorter document). */
export function shareHeaders (doc: Doc): Doc {
  const declared: Record<string, unknown> = {}
  for (const item of Object.values(doc.paths ?? {})) {
    for (const op of Object.values(item)) {
      for (const response of Object.values(op.responses ?? {})) {
        for (const [name, header] of Object.entries(response.headers ?? {})) {
          const id = SHARED_HEADERS[name]
          if (id === undefined) continue
          declared[id] ??= header
          response.headers![name] = { $ref: `#/components/headers/${id}` }
        }
      }
    }
  }
  doc.components = { ...doc.components, headers: { ...doc.components?.headers, ...declared } }
  return doc
}

/** @fastify/swagger's options: the document's frame and the per-route transform. */
export function swaggerOptions (version: string): FastifyDynamicSwaggerOptions {
  return {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Sentinel KV gateway',
        version,
        description: 'HTTP key/value gateway in front of a Redis Sentinel deployment: writes go to the master and are acknowledged once the replicas that could be promoted have them; reads are spread over healthy replicas.',
        license: { name: 'MIT', identifier: 'MIT' }
      },
      // Relative: the gateway that serves the document (/docs "Try it out", generated clients given a base URL).
      servers: [{ url: '/', description: 'The gateway that serves this document' }],
      tags: [{ name: 'kv', description: 'Key/value operations' }, { name: 'operations', description: 'Topology and health' }],
      components: { securitySchemes: SECURITY_SCHEMES },
      // Every route needs a token once AUTH_TOKENS is set; the public ones say `security: []`.
      security: [{ bearer: [] }]
    },
    transform: documentRoute as unknown as SwaggerTransform,
    transformObject: (d) => 'openapiObject' in d ? shareHeaders(headTwins(d.openapiObject as Doc)) as typeof d.openapiObject : d.swaggerObject,
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) }
  }
}
