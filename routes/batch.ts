/**
 * POST /kv/_batch: several get/put/delete operations in one round trip (for lambdas). Each runs in
 * order, is routed like its single-key route (reads to replicas, writes to the master) and answers
 * separately; one failing operation does not stop the others.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type, type Static } from 'typebox'
import { authorize } from '../src/auth.js'
import { GatewayError } from '../src/errors.js'
import { DurabilitySchema, errorRef, ErrorSchema, unauthorizedRef } from '../src/schemas.js'
import { etagOf } from '../src/etag.js'

const LONE_SURROGATE = /\p{Surrogate}/u

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
      tags: ['kv'],
      summary: 'Several operations in one request',
      description: `Runs up to BATCH_MAX_OPS (${config.batchMaxOps} here) get/put/delete operations in order; each answers separately.`,
      body: Type.Object({
        ops: Type.Array(BatchOpSchema, { minItems: 1, maxItems: config.batchMaxOps }),
        encoding: Type.Optional(Encoding),
        durability: Type.Optional(DurabilitySchema)
      }, { additionalProperties: false }),
      response: {
        200: { description: 'One result per operation, in order', content: { 'application/json': { schema: Type.Object({ results: Type.Array(BatchResultSchema) }, { additionalProperties: false }) } } },
        401: unauthorizedRef(),
        400: errorRef('Not a valid batch (see the schema), or more than BATCH_MAX_OPS operations'),
        413: errorRef('The request body is too large'),
        500: errorRef('Internal error')
      }
    }
  }, async (req) => {
    const encoding = req.body.encoding ?? 'utf8'
    const durability = req.body.durability ?? config.durability
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
          return { status: 200, value: r.value.toString(encoding), etag: r.etag, servedBy: r.servedBy }
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
