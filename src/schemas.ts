/**
 * Request and response schemas, defined once: the routes validate and serialize with them, and
 * openapi.yaml is generated from the routes (scripts/openapi.ts; a test fails when they differ).
 */
import { Type, type Static } from 'typebox'

export const ErrorSchema = Type.Object({
  error: Type.Object({
    code: Type.String({ description: 'Stable error code, e.g. GW_ERR_KEY_NOT_FOUND' }),
    message: Type.String({ description: 'Human-readable explanation (never a stack trace or internal address)' })
  }, { additionalProperties: false })
}, { $id: 'Error', additionalProperties: false, description: 'The one error shape of every 4xx/5xx answer' })
export type ErrorReply = Static<typeof ErrorSchema>

/** A documented error response: the shared Error schema under application/json (plus response headers, if any). */
export const errorRef = (description: string, headers?: Record<string, unknown>): unknown =>
  ({ description, ...(headers === undefined ? {} : { headers }), content: { 'application/json': { schema: Type.Ref('Error') } } })

/** The Retry-After response header, sent with every 503 (and 504) the gateway answers. */
export const retryAfterHeader = {
  'retry-after': { type: 'integer', minimum: 0, description: 'Seconds to wait before retrying' }
}

/** 401: the challenge header tells clients to send a bearer token. */
export const unauthorizedRef = (description = 'Missing or unknown bearer token'): unknown => errorRef(description, {
  'www-authenticate': { type: 'string', description: 'Bearer challenge: `Bearer realm="sentinel-kv-gateway"`' }
})

/** Error responses shared by the KV routes. */
export const kvErrors = {
  400: errorRef('Bad parameter, key or header'),
  500: errorRef('Internal error'),
  503: errorRef('No Redis node can serve the request now (Retry-After says when to retry)', retryAfterHeader)
}

export const KeyParamsSchema = Type.Object({
  key: Type.String({ description: 'The key, URL-encoded (any UTF-8; encode `/` as %2F). 1 to KV_MAX_KEY_BYTES bytes after decoding.' })
})
export type KeyParams = Static<typeof KeyParamsSchema>

export const GetQuerySchema = Type.Object({
  consistency: Type.Optional(Type.Union([Type.Literal('eventual'), Type.Literal('strong')], {
    description: '`eventual` (default): a healthy replica answers; `strong`: the master answers'
  })),
  syncToken: Type.Optional(Type.String({ pattern: '^[0-9]{1,20}$', description: 'Read-your-writes: the X-Sync-Token of an earlier write; only a replica that has it (or the master) answers' }))
}, { additionalProperties: false })
export type GetQuery = Static<typeof GetQuerySchema>

export const DurabilitySchema = Type.Union([Type.Literal('replicated'), Type.Literal('none')], {
  description: '`replicated` (default): acknowledged only when the replicas that could be promoted have it; `none`: master only (faster, may be lost in a failover)'
})

export const PutQuerySchema = Type.Object({
  // A string, not an integer: ajv's number coercion would accept `0x10`, `1e2` or ` 5`.
  ttl: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,9}$', description: 'Expire the key after this many seconds (a positive integer, at most 2147483647)' })),
  durability: Type.Optional(DurabilitySchema)
}, { additionalProperties: false })
export type PutQuery = Static<typeof PutQuerySchema>

export const DeleteQuerySchema = Type.Object({
  durability: Type.Optional(DurabilitySchema)
}, { additionalProperties: false })
export type DeleteQuery = Static<typeof DeleteQuerySchema>

/** A strong ETag as the gateway makes them: the SHA-1 of the value, quoted. */
export const ETAG_PATTERN = '^"[0-9a-f]{40}"$'

export const PutHeadersSchema = Type.Object({
  'if-none-match': Type.Optional(Type.Literal('*', { description: '`*`: create only (412 if the key exists)' })),
  'if-match': Type.Optional(Type.String({
    pattern: `^\\*$|${ETAG_PATTERN}`,
    description: '`*`: replace only (412 if the key is missing); `"<etag>"`: compare-and-set, stored only if the current value still has this ETag (412 otherwise)'
  }))
})
export type PutHeaders = Static<typeof PutHeadersSchema>

export const GetHeadersSchema = Type.Object({
  'if-none-match': Type.Optional(Type.String({ description: 'ETag(s) the client holds: 304 Not Modified when the value still has one of them' })),
  'x-sync-token': Type.Optional(Type.String({ pattern: '^[0-9]{1,20}$', description: 'Same as the syncToken query parameter' }))
})
export type GetHeaders = Static<typeof GetHeadersSchema>

export const WriteReplySchema = Type.Object({
  result: Type.Union([Type.Literal('created'), Type.Literal('replaced')]),
  syncToken: Type.String({ description: 'Master replication offset after the write (also in X-Sync-Token)' }),
  replicas: Type.Integer({ description: 'Replicas that confirmed the write before it was acknowledged' })
}, { additionalProperties: false })
export type WriteReply = Static<typeof WriteReplySchema>

const Address = {
  host: Type.String(),
  port: Type.Integer()
}

export const TopologySchema = Type.Object({
  masterName: Type.String(),
  master: Type.Union([Type.Object({ ...Address, confirmed: Type.Boolean({ description: 'The node\'s own ROLE says master' }) }), Type.Null()]),
  configEpoch: Type.Integer(),
  requiredReplicas: Type.Integer({ description: 'Replicas a replicated write must reach (WAIT count)' }),
  failoverInProgress: Type.Boolean(),
  replicas: Type.Array(Type.Object({
    ...Address,
    healthy: Type.Boolean(),
    reason: Type.Optional(Type.String()),
    attached: Type.Boolean(),
    lagBytes: Type.Union([Type.Integer(), Type.Null()]),
    lagSeconds: Type.Union([Type.Integer(), Type.Null()]),
    latencyMs: Type.Union([Type.Number(), Type.Null()])
  })),
  sentinels: Type.Array(Type.Object({ ...Address, reachable: Type.Boolean() })),
  breakers: Type.Array(Type.Object({
    node: Type.String(),
    state: Type.Union([Type.Literal('closed'), Type.Literal('open'), Type.Literal('half-open')]),
    nextAttemptAt: Type.Union([Type.String(), Type.Null()]),
    fires: Type.Integer(),
    failures: Type.Integer(),
    successes: Type.Integer(),
    timeouts: Type.Integer(),
    rejects: Type.Integer()
  })),
  lastFailover: Type.Union([Type.Object({
    at: Type.String(),
    from: Type.Union([Type.Object(Address), Type.Null()]),
    to: Type.Object(Address),
    detectedBy: Type.String()
  }), Type.Null()]),
  readStrategy: Type.String(),
  nearCache: Type.Object({
    enabled: Type.Boolean({ description: 'NEAR_CACHE' }),
    activeReplicas: Type.Array(Type.String(), { description: 'Replicas whose reads fill the cache now (invalidation connection subscribed and answering its heartbeat, tracking on)' }),
    entries: Type.Integer(),
    bytes: Type.Integer({ description: 'Memory charged to the cache (keys, values, per-entry overhead)' }),
    maxBytes: Type.Integer(),
    maxValueBytes: Type.Integer(),
    hits: Type.Integer(),
    misses: Type.Integer(),
    evictions: Type.Integer(),
    invalidations: Type.Integer(),
    flushes: Type.Record(Type.String(), Type.Integer(), { description: 'Whole-cache flushes by reason: invalidation-connection, data-connection, heartbeat, topology, server-flush' })
  }, { additionalProperties: false, description: 'The in-process near-cache of replica reads' }),
  refreshedAt: Type.Union([Type.String(), Type.Null()])
}, { additionalProperties: false })
export type TopologyReply = Static<typeof TopologySchema>

export const HealthSchema = Type.Object({
  status: Type.String(),
  reason: Type.Optional(Type.String())
}, { additionalProperties: false })
