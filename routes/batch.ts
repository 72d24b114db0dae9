/**
 * POST /kv/_batch: several get/put/delete operations in one round trip (for lambdas). Each runs in
 * order, is routed like its single-key route (reads to replicas, writes to the master) and answers
 * separately; one failing operation does not stop the others.
 */
import { isUtf8 } from 'node:buffer'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type, type Static } from 'typebox'
import { authorize } from '../src/auth.js'
import { GatewayError } from '../src/errors.js'
import { DurabilitySchema, errorRef, ErrorSchema, rateLimitedRef, unauthorizedRef } from '../src/schemas.js'
import { etagOf } from '../src/etag.js'

const LONE_SURROGATE = /\p{Surrogate}/u
/** Standard base64 with its padding: anything else would be decoded silently into other bytes. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

const Key = Type.String({ minLength: 1, description: 'The key (not URL-encoded here)' })
const Encoding = Type.Union([Type.Literal('utf8'), Type.Literal('base64')], { description: 'How `value` strings are encoded, in and out. Default: utf8' })

export const BatchOpSchema = Type.Union([
  Type.Object({ op: Type.Literal('get'), key: Key, consistency: Type.Optional(Type.Union([Type.Literal('eventual'), Type.Literal('strong')])) }, { additionalProperties: false }),
  Type.Object({ op: Type.Literal('put'), key: Key, value: Type.String(), ttl: Type.Optional(Type.Integer({ minimum: 1, maximum: 2147483647 })) }, { additionalProperties: false }),
  Type.Object({ op: Type.Literal('delete'), key: Key }, { additionalProperties: false })
])
export type BatchOp = Static<typeof BatchOpSchema>

export const BatchResultSchema = Type.Object({
  status: Type.Integer({ description: 'The status the single-key route would have answered' }),
  value: Type.Optional(Type.String()),
  encoding: Type.Optional(Type.Literal('base64', { description: 'Set when `value` is base64 although the batch asked for utf8: the stored bytes are not valid UTF-8' })),
  etag: Type.Optional(Type.String()),
  servedBy: Type.Optional(Type.Union([Type.Literal('replica'), Type.Literal('master')])),
  syncToken: Type.Optional(Type.String()),
  error: Type.Optional(Type.Index(ErrorSchema, ['error']))
}, { additionalProperties: false })
export type BatchResult = Static<typeof BatchResultSchema>

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const { kv, gatewayConfig: config } = app

  app.post('/kv/_batch', {
    // Values travel inside JSON (base64 grows them by a third): leave room for a few full-size ones.
    bodyLimit: config.maxValueBytes * 4 + 65_536,
    schema: {
      operationId: 'batch',
      tags: ['kv'],
      summary: 'Several operations in one request',
      description: `Runs up to BATCH_MAX_OPS (${config.batchMaxOps} here) get/put/delete operations in order; each answers separately. ` +
        'Values are UTF-8 text by default; with `"encoding": "base64"` they are base64 both ways (binary-safe). A value read with utf8 ' +
        'that is not valid UTF-8 comes back base64, and its result says `"encoding": "base64"`. Invalid base64 in a put refuses the whole batch (400).',
      body: Type.Object({
        ops: Type.Array(BatchOpSchema, { minItems: 1, maxItems: config.batchMaxOps }),
        encoding: Type.Optional(Encoding),
        durability: Type.Optional(DurabilitySchema)
      }, {
        additionalProperties: false,
        examples: [{ ops: [{ op: 'put', key: 'user:1', value: 'Alice', ttl: 3600 }, { op: 'get', key: 'user:1' }, { op: 'delete', key: 'user:2' }] }]
      }),
      response: {
        200: {
          description: 'One result per operation, in order',
          content: {
            'application/json': {
              schema: Type.Object({ results: Type.Array(BatchResultSchema) }, {
                additionalProperties: false,
                examples: [{ results: [{ status: 201, etag: '"35318264c9a98faf79965c270ac80c5606774df1"', syncToken: '48213' }, { status: 200, value: 'Alice', etag: '"35318264c9a98faf79965c270ac80c5606774df1"', servedBy: 'replica' }, { status: 404, error: { code: 'GW_ERR_KEY_NOT_FOUND', message: 'the key did not exist' } }] }]
              })
            }
          }
        },
        400: errorRef('Not a valid batch (see the schema), more than BATCH_MAX_OPS operations, or invalid base64 in a put value'),
        401: unauthorizedRef(),
        403: errorRef('Sent by a browser page on an origin not in CORS_ORIGINS: cross-site writes are refused (a token that may not touch a key gets 403 in that operation\'s result instead)'),
        413: errorRef('The request body is too large'),
        415: errorRef('The body is not application/json'),
        429: rateLimitedRef(),
        500: errorRef('Internal error')
      }
    }
  }, async (req) => {
    const encoding = req.body.encoding ?? 'utf8'
    const durability = req.body.durability ?? config.durability
    if (encoding === 'base64') {
      const bad = req.body.ops.findIndex(op => op.op === 'put' && !BASE64.test(op.value))
      if (bad >= 0) throw new GatewayError('GW_ERR_BAD_REQUEST', `body/ops/${bad}/value is not valid base64 (standard alphabet, with padding): nothing was run`)
    }
    const results: BatchResult[] = []
    for (const op of req.body.ops) {
      try {
        if (Buffer.byteLength(op.key) > config.maxKeyBytes) throw new GatewayError('GW_ERR_KEY_INVALID', `the key must be 1 to ${config.maxKeyBytes} bytes`)
        // A lone surrogate has no UTF-8 form: it would be stored as U+FFFD, under another key.
        if (LONE_SURROGATE.test(op.key)) throw new GatewayError('GW_ERR_KEY_INVALID', 'the key is not valid Unicode (lone surrogate)')
        if (op.op === 'put' && encoding === 'utf8' && LONE_SURROGATE.test(op.value)) {
          throw new GatewayError('GW_ERR_BAD_REQUEST', 'the value is not valid Unicode (lone surrogate): send it with "encoding": "base64"')
        }
        results.push(await run(op))
      } catch (err) {
        if (!(err instanceof GatewayError)) throw err
        results.push({ status: err.statusCode, error: { code: err.code, message: err.message } })
      }
    }
    return { results }

    async function run (op: BatchOp): Promise<BatchResult> {
      switch (op.op) {
        case 'get': {
          authorize(req.principal, 'read', op.key)
          const r = await kv.get(op.key, { consistency: op.consistency ?? 'eventual' })
          if (r.value === null) throw new GatewayError('GW_ERR_KEY_NOT_FOUND', 'the key does not exist')
          // Bytes that are not UTF-8 would be mangled into U+FFFD: send them base64 and say so.
          const asBase64 = encoding === 'base64' || !isUtf8(r.value)
          return { status: 200, value: r.value.toString(asBase64 ? 'base64' : 'utf8'), ...(asBase64 && encoding === 'utf8' ? { encoding: 'base64' as const } : {}), etag: r.etag, servedBy: r.servedBy }
        }
        case 'put': {
          authorize(req.principal, 'write', op.key)
          const value = Buffer.from(op.value, encoding)
          if (value.length > config.maxValueBytes) throw new GatewayError('GW_ERR_VALUE_TOO_LARGE', `the value is larger than ${config.maxValueBytes} bytes`)
          const r = await kv.put(op.key, value, { condition: 'none', durability, ...(op.ttl === undefined ? {} : { ttlSeconds: op.ttl }) })
          return { status: r.created ? 201 : 200, etag: etagOf(value), syncToken: r.syncToken }
        }
        case 'delete': {
          authorize(req.principal, 'write', op.key)
          const r = await kv.delete(op.key, { durability })
          if (!r.existed) throw new GatewayError('GW_ERR_KEY_NOT_FOUND', 'the key did not exist')
          return { status: 204, syncToken: r.syncToken }
        }
      }
    }
  })
}

export default routes
