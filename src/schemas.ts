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
}, { $id: 'Error', additionalProperties: false, description: 'The one error shape of every 4xx/5xx answer', examples: [{ error: { code: 'GW_ERR_KEY_NOT_FOUND', message: 'the key does not exist' } }] })
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

/** 429: over the rate limit, or too many failed authentications from this address. */
export const rateLimitedRef = (): unknown => errorRef('Too many requests: over RATE_LIMIT_MAX in the window (per token; per address when anonymous), or over AUTH_FAILURES_MAX failed authentications from this address. Retry-After says when to come back', retryAfterHeader)

/** Error responses shared by the KV routes. */
export const kvErrors = {
  400: errorRef('Bad parameter, key or header'),
  429: rateLimitedRef(),
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

export const DurabilitySchema = Type.Union([Type.Literal('replicated'), Type.Literal('all'), Type.Literal('none')], {
  description: '`replicated` (default, WRITE_DURABILITY): acknowledged only when every replica that could be promoted (listed by the sentinels, not flagged down) has it; `all`: when every data node the sentinels list has it, down or not (waits, then 503/504, while one is down); `none`: master only (faster, may be lost in a failover)'
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
}, { additionalProperties: false, examples: [{ result: 'created', syncToken: '48213', replicas: 2 }] })
export type WriteReply = Static<typeof WriteReplySchema>

const Address = {
  host: Type.String(),
  port: Type.Integer()
}

const AckedPosition = Type.Object({
  node: Type.String(),
  replid: Type.String({ description: 'The master\'s master_replid when the write was acknowledged' }),
  offset: Type.Integer({ description: 'The master\'s replication offset right after the write' })
})

/** One replica as /topology shows it (also per shard in Cluster mode). */
const ReplicaViewSchema = Type.Object({
  ...Address,
  healthy: Type.Boolean(),
  reason: Type.Optional(Type.String()),
  attached: Type.Boolean(),
  lagBytes: Type.Union([Type.Integer(), Type.Null()]),
  lagSeconds: Type.Union([Type.Integer(), Type.Null()]),
  link: Type.Optional(Type.String({ description: 'Replication link trouble that does not stop reads, e.g. `master hears no ack for 5 s`: the master answers the gateway but cannot hear this replica (an asymmetric cut); the gateway closes the replica\'s link so it reconnects' })),
  latencyMs: Type.Union([Type.Number(), Type.Null()])
})

/** The last failover as /topology shows it (also per shard in Cluster mode). */
const LastFailoverSchema = Type.Union([Type.Object({
  at: Type.String(),
  from: Type.Union([Type.Object(Address), Type.Null()]),
  to: Type.Object(Address),
  detectedBy: Type.String({ description: '`sentinels` (they named another master), `cluster` (Cluster mode: another node serves the shard\'s slots) or `replication-id` (the master\'s replication history changed in place: a restart that lost data)' }),
  acknowledgedWritesAtRisk: Type.Union([Type.Boolean(), Type.Null()], { description: 'true: the new master\'s replication history does not contain the last write this gateway acknowledged (a stale promotion: acknowledged writes may be lost; also counted in skv_stale_promotions_total). null: the new master\'s INFO has not been read yet' }),
  acknowledgedOffsetGap: Type.Union([Type.Integer(), Type.Null()], { description: 'Bytes of acknowledged replication stream the new master lacks (0 when none; null when the histories share no replication id the gateway can see)' }),
  acknowledged: Type.Union([AckedPosition, Type.Null()], { description: 'The last acknowledged write compared (null: none since the previous check)' }),
  newMasterHistory: Type.Union([Type.Object({
    replid: Type.String({ description: 'master_replid' }),
    replid2: Type.String({ description: 'master_replid2' }),
    secondReplOffset: Type.Integer({ description: 'second_repl_offset: one past the last byte of replid2 it holds' }),
    masterReplOffset: Type.Integer()
  }), Type.Null()], { description: 'The new master\'s INFO replication as compared' })
}), Type.Null()])

/** Cluster mode only: the shards, as src/cluster/view.ts builds them. */
export const ShardsSchema = Type.Array(Type.Object({
  id: Type.String({ description: 'The shard\'s name in the gateway: the first 8 characters of the node id of its first master seen (kept across failovers)' }),
  slots: Type.Array(Type.String(), { description: 'Hash slot ranges served, e.g. `0-5460`' }),
  master: Type.Union([Type.Object({ ...Address, confirmed: Type.Boolean({ description: 'The node\'s own INFO says role:master' }) }), Type.Null()]),
  requiredReplicas: Type.Integer({ description: 'WAIT count of a `replicated` write on this shard: every replica the cluster lists for the master and does not flag `fail`, attached or not' }),
  allReplicas: Type.Integer({ description: 'WAIT count of a `durability=all` write on this shard' }),
  failoverInProgress: Type.Boolean({ description: 'The cluster flags the master `fail?` or `fail`: writes to this shard wait' }),
  replicas: Type.Array(ReplicaViewSchema),
  lastFailover: LastFailoverSchema
}), { description: 'Cluster mode only (REDIS_CLUSTER_NODES): the shards. The top-level master and replicas then summarize them (the first shard\'s master, every replica)' })
export type ShardsView = Static<typeof ShardsSchema>

export const TopologySchema = Type.Object({
  masterName: Type.String(),
  master: Type.Union([Type.Object({ ...Address, confirmed: Type.Boolean({ description: 'The node\'s own ROLE says master' }), note: Type.Optional(Type.String({ description: 'Set when the master answers the gateway but cannot hear some replicas (no ack for more than 2 s): writes are not confirmed until they reconnect' })) }), Type.Null()]),
  configEpoch: Type.Integer(),
  requiredReplicas: Type.Integer({ description: 'Replicas a `replicated` write must reach (WAIT count): every replica the sentinels list and do not flag down, attached or not' }),
  allReplicas: Type.Integer({ description: 'Replicas a `durability=all` write must reach: every data node the sentinels list besides the master, down or not' }),
  failoverInProgress: Type.Boolean(),
  replicas: Type.Array(ReplicaViewSchema),
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
  lastFailover: LastFailoverSchema,
  lastAcknowledged: Type.Union([AckedPosition, Type.Null()], { description: 'The last write this gateway acknowledged: its master, replication id and offset (ROLE after the write); null when none since the last failover check that found it missing' }),
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
  refreshedAt: Type.Union([Type.String(), Type.Null()]),
  shards: Type.Optional(ShardsSchema)
}, { additionalProperties: false })
export type TopologyReply = Static<typeof TopologySchema>

export const HealthSchema = Type.Object({
  status: Type.String(),
  reason: Type.Optional(Type.String())
}, { additionalProperties: false })
