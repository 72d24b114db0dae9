/** /kv/:key: HTTP mapping only. Parse, validate, call the KV service, shape the answer. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply } from 'fastify'
import { authorize } from '../src/auth.js'
import { etagOf } from '../src/etag.js'
import { GatewayError } from '../src/errors.js'
import type { Condition } from '../src/kv.js'
import {
  DeleteQuerySchema, errorRef, GetHeadersSchema, GetQuerySchema, KeyParamsSchema, kvErrors, PutHeadersSchema,
  PutQuerySchema, retryAfterHeader, unauthorizedRef, WriteReplySchema
} from '../src/schemas.js'

const headers = {
  servedBy: { 'x-served-by': { type: 'string', enum: ['replica', 'master'], description: 'Which role answered (`replica` also for an answer from the near-cache, which holds replica reads)' } },
  cache: { 'x-cache': { type: 'string', enum: ['hit', 'miss', 'bypass'], description: 'Near-cache outcome: `hit` (answered from the gateway\'s memory, kept current by Redis invalidations), `miss` (read from a replica), `bypass` (strong or sync-token read). Absent when NEAR_CACHE=false.' } },
  ttl: { 'x-ttl': { type: 'integer', description: 'Seconds until the key expires (absent when it does not)' } },
  location: { location: { type: 'string', description: 'Path of the created key (/kv/ + the URL-encoded key)' } },
  etag: { etag: { type: 'string', description: 'Strong ETag of the value (SHA-1, quoted): send it in If-None-Match (GET) or If-Match (PUT)' } },
  sync: { 'x-sync-token': { type: 'string', description: 'Master replication offset after the write: send it back on a GET to read your own write' } }
}

/** True when an If-None-Match header value names `etag` (or is `*`). */
function matchesAny (header: string, etag: string): boolean {
  return header.split(',').some(t => { const v = t.trim().replace(/^W\//, ''); return v === '*' || v === etag })
}

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const { kv, gatewayConfig: config } = app

  // Values are raw bytes of any content type (this plugin's scope only).
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: config.maxValueBytes }, (_req, body, done) => done(null, body))

  const checkKey = (key: string): string => {
    const bytes = Buffer.byteLength(key)
    if (bytes === 0 || bytes > config.maxKeyBytes) {
      throw new GatewayError('GW_ERR_KEY_INVALID', `the key must be 1 to ${config.maxKeyBytes} bytes after URL decoding (got ${bytes})`)
    }
    return key
  }

  // GET and HEAD in one route: Fastify's own HEAD twin would add `Content-Length: 0` to a 304.
  app.route({
    method: ['GET', 'HEAD'],
    url: '/kv/:key',
    schema: {
      operationId: 'getValue',
      tags: ['kv'],
      summary: 'Read a value',
      description: 'Answers the exact stored bytes. Served by a healthy replica chosen by the read strategy; the master answers when no replica can (or with `consistency=strong`).',
      params: KeyParamsSchema,
      querystring: GetQuerySchema,
      headers: GetHeadersSchema,
      response: {
        200: {
          description: 'The stored bytes',
          headers: { ...headers.servedBy, ...headers.cache, ...headers.ttl, ...headers.etag },
          content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' }, example: 'hello' } }
        },
        304: { description: 'Not modified: the value still has an ETag given in If-None-Match', headers: { ...headers.servedBy, ...headers.cache, ...headers.etag }, type: 'null' },
        401: unauthorizedRef(),
        403: errorRef('The token may not read this key'),
        404: errorRef('The key does not exist'),
        409: errorRef('The key holds a non-string Redis value'),
        413: errorRef('The stored value is larger than KV_MAX_VALUE_BYTES (written around the gateway): it is not sent'),
        ...kvErrors
      }
    },
    handler: async (req, reply) => {
      const key = checkKey(req.params.key)
      authorize(req.principal, 'read', key)
      const token = req.query.syncToken ?? req.headers['x-sync-token']
      const r = await kv.get(key, {
        consistency: req.query.consistency ?? 'eventual',
        ...(token === undefined ? {} : { syncToken: Number(token) })
      })
      reply.header('x-served-by', r.servedBy)
      if (r.cache !== undefined) reply.header('x-cache', r.cache)
      if (r.value === null) throw new GatewayError('GW_ERR_KEY_NOT_FOUND', 'the key does not exist')
      reply.header('etag', r.etag)
      const inm = req.headers['if-none-match']
      // No payload at all: a 304 has no body, so no Content-Type or Content-Length either (RFC 9110).
      if (inm !== undefined && matchesAny(inm, r.etag)) return await (reply.code(304) as FastifyReply).send()
      if (r.ttlSeconds !== null) reply.header('x-ttl', r.ttlSeconds)
      return await reply.type('application/octet-stream').send(r.value)
    }
  })

  app.put('/kv/:key', {
    bodyLimit: config.maxValueBytes,
    schema: {
      operationId: 'putValue',
      tags: ['kv'],
      summary: 'Store a value',
      description: 'Stores the request body byte-for-byte (any content type) on the master. Acknowledged only once the replicas that could be promoted have it, unless `durability=none`.',
      params: KeyParamsSchema,
      querystring: PutQuerySchema,
      headers: PutHeadersSchema,
      // Raw bytes of any content type (stored as sent): documented, not validated (the parser hands a
      // Buffer). Two media types offered, so /docs shows a text box and generated clients send text as is.
      body: {
        content: {
          'text/plain': { schema: { description: 'The value as text (stored as its UTF-8 bytes). Any other content type is accepted too and stored byte for byte', contentMediaType: 'text/plain', examples: ['hello'] } },
          'application/octet-stream': { schema: { description: 'The value: raw bytes', contentMediaType: 'application/octet-stream' } }
        }
      } as unknown as undefined,
      response: {
        200: { description: 'Replaced an existing value', headers: { ...headers.sync, ...headers.etag }, content: { 'application/json': { schema: WriteReplySchema } } },
        201: { description: 'Created the key', headers: { ...headers.sync, ...headers.location, ...headers.etag }, content: { 'application/json': { schema: WriteReplySchema } } },
        401: unauthorizedRef(),
        403: errorRef('The token may not write this key'),
        409: errorRef('The key holds a non-string Redis value'),
        412: errorRef('If-None-Match: * and the key exists, If-Match: * and it does not, or If-Match: "<etag>" and the value changed'),
        413: errorRef('The value is larger than KV_MAX_VALUE_BYTES'),
        415: errorRef('The Content-Type header is not a valid media type (any valid one is accepted)'),
        504: errorRef('The write reached the master but was not confirmed on the replicas in time: its outcome is unknown; retrying is safe', retryAfterHeader),
        ...kvErrors
      }
    }
  }, async (req, reply) => {
    const key = checkKey(req.params.key)
    authorize(req.principal, 'write', key)
    const ifMatch = req.headers['if-match']
    if (req.headers['if-none-match'] === '*' && ifMatch !== undefined) {
      throw new GatewayError('GW_ERR_BAD_REQUEST', 'If-None-Match and If-Match cannot be combined')
    }
    const condition: Condition = req.headers['if-none-match'] === '*'
      ? 'create-only'
      : ifMatch === '*' ? 'replace-only' : ifMatch !== undefined ? { etag: ifMatch.slice(1, -1) } : 'none'
    const ttl = req.query.ttl === undefined ? undefined : Number(req.query.ttl)
    if (ttl !== undefined && ttl > 2147483647) throw new GatewayError('GW_ERR_BAD_REQUEST', 'querystring/ttl must be at most 2147483647')
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0)
    const r = await kv.put(key, body, {
      condition,
      ...(ttl === undefined ? {} : { ttlSeconds: ttl }),
      ...(req.query.durability === undefined ? {} : { durability: req.query.durability })
    })
    reply.header('x-sync-token', r.syncToken)
    reply.header('etag', etagOf(body))
    if (r.created) reply.header('location', `/kv/${encodeURIComponent(key)}`)
    return await reply.code(r.created ? 201 : 200).send({ result: r.created ? 'created' : 'replaced', syncToken: r.syncToken, replicas: r.replicas })
  })

  app.delete('/kv/:key', {
    schema: {
      operationId: 'deleteValue',
      tags: ['kv'],
      summary: 'Delete a key',
      description: 'Deletes on the master, acknowledged like a PUT.',
      params: KeyParamsSchema,
      querystring: DeleteQuerySchema,
      response: {
        204: { description: 'Deleted', headers: headers.sync, type: 'null' },
        401: unauthorizedRef(),
        403: errorRef('The token may not write this key'),
        404: errorRef('The key did not exist'),
        504: errorRef('The delete reached the master but was not confirmed on the replicas in time', retryAfterHeader),
        ...kvErrors
      }
    }
  }, async (req, reply) => {
    const key = checkKey(req.params.key)
    authorize(req.principal, 'write', key)
    const r = await kv.delete(key, req.query.durability === undefined ? {} : { durability: req.query.durability })
    reply.header('x-sync-token', r.syncToken)
    if (!r.existed) throw new GatewayError('GW_ERR_KEY_NOT_FOUND', 'the key did not exist')
    // No payload: a 204 has no body, so no Content-Type either.
    return await (reply.code(204) as FastifyReply).send()
  })

  // Any other method on a key: 405 with the methods it takes (not the 404 of an unknown route).
  app.route({
    method: ['PATCH', 'POST'],
    url: '/kv/:key',
    schema: { hide: true },
    config: { public: true, rateLimit: false },
    handler: async (_req, reply) => {
      reply.header('allow', 'GET, HEAD, PUT, DELETE')
      throw new GatewayError('GW_ERR_METHOD_NOT_ALLOWED', 'this method is not allowed on /kv/{key}: use GET, HEAD, PUT or DELETE')
    }
  })
}

export default routes
