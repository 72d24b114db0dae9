/**
 * OpenAPI description of the Upstash-compatible routes (tag `upstash`). Attached through
 * @fastify/swagger's per-route `swaggerTransform`: the routes parse their bodies themselves (any
 * content type, like Upstash), so these schemas document without validating.
 */
import type { FastifySchema } from 'fastify'

export const UPSTASH_TAG = { name: 'upstash', description: 'Upstash REST compatible commands (for @upstash/redis): routed to replicas or the master, writes replica-confirmed' }

/** The error answer of every Upstash route (a shared schema: components.schemas.UpstashError). */
export const UpstashErrorSchema = {
  $id: 'UpstashError',
  type: 'object',
  properties: { error: { type: 'string', description: 'The Redis error (ERR ..., WRONGTYPE ...), NOPERM ... for a token that may not, or GW_ERR_... for a gateway condition' } },
  required: ['error'],
  additionalProperties: false,
  description: 'The Upstash error shape'
}

const err = (description: string, headers?: Record<string, unknown>): unknown =>
  ({ description, ...(headers === undefined ? {} : { headers }), content: { 'application/json': { schema: { $ref: 'UpstashError' } } } })

const retryAfter = { 'retry-after': { type: 'integer', minimum: 0, description: 'Seconds to wait before retrying' } }

const okHeaders = {
  'upstash-sync-token': { type: 'string', description: 'Read your writes: the replication offset of the answering node (after the write, for writes). @upstash/redis sends it back in its next request; a read is then served only by a replica that reached it, or the master' },
  'x-served-by': { type: 'string', enum: ['replica', 'master'], description: 'Which role answered' }
}

const requestHeaders = {
  type: 'object',
  properties: {
    authorization: { type: 'string', description: '`Bearer <token>` (a token of AUTH_TOKENS); or the `_token` query parameter' },
    'upstash-encoding': { type: 'string', enum: ['base64'], description: '`base64` (what @upstash/redis sends): every string of the answer is base64 (binary-safe), a whole answer "OK" excepted' },
    'upstash-sync-token': { type: 'string', description: 'Read your writes: an `upstash-sync-token` answered earlier' }
  }
}

const tokenQuery = {
  type: 'object',
  properties: { _token: { type: 'string', description: 'The bearer token, when no Authorization header is sent (it is redacted from logs; prefer the header)' } }
}

const Result = {
  type: 'object',
  properties: { result: { description: 'The Redis answer: string (base64 with Upstash-Encoding: base64), integer, null (missing key), or array' } },
  required: ['result'],
  additionalProperties: false
}

const ResultOrError = {
  type: 'object',
  properties: {
    result: { description: 'The Redis answer of this command' },
    error: { type: 'string', description: 'The Redis error of this command' }
  },
  additionalProperties: false
}

const CommandSchema = {
  type: 'array',
  minItems: 1,
  items: { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }] },
  description: 'The command name then its arguments, e.g. ["SET", "user:1", "Alice", "EX", 60]',
  examples: [['SET', 'user:1', 'Alice', 'EX', 60]]
}

const common = (withBody: boolean, perCommandRefusals = false): Record<number, unknown> => ({
  400: err('A Redis error (ERR ..., WRONGTYPE ...), a malformed request, an unknown command, a command outside the allowlist (@admin, @dangerous, @connection, @transaction, blocking forms, MOVE, COPY ... DB, subscriptions, SCRIPT/FUNCTION management, UPSTASH_DENY_COMMANDS), keys that cannot be located, or an argument that would grow a value past KV_MAX_VALUE_BYTES'),
  401: err('Missing or unknown token', { 'www-authenticate': { type: 'string', description: 'Bearer challenge' } }),
  // A pipeline answers a refused command in its place (200), like any other failing command.
  ...(perCommandRefusals ? { 403: err('Sent by a browser page on an origin not in CORS_ORIGINS: cross-site requests that may write are refused') } : { 403: err('NOPERM: the token lacks the right (r read, w write, x scripts, p publish), or names a key, channel or pattern outside its prefix, a reserved key (__skv:...) or a reserved channel (__...)') }),
  ...(withBody ? { 413: err('The request body is too large') } : {}),
  429: err('Too many requests: over RATE_LIMIT_MAX in the window, or over AUTH_FAILURES_MAX failed authentications from this address', retryAfter),
  500: err('Internal error'),
  503: err('No Redis node could serve the request within the retry budget; nothing was applied', retryAfter),
  504: err('A write reached the master but was not confirmed on the replicas in time: it may or may not persist. It was not repeated (Redis commands need not be idempotent)', retryAfter)
})

const description = (what: string): string => `${what}

What a command is comes from the server's own command table (COMMAND); what a token may run, from its rights (see the README's Security section). Routing: a read-only invocation (the \`readonly\` flag and read-only key specs) is served by a healthy replica (read strategy, REPLICA_MAX_LAG_BYTES, breakers), the master as fallback; SCAN-type cursors and commands that change no data (PING...) by the master; anything that writes by the master, acknowledged only once WAIT confirms it on every replica that could be promoted (like PUT /kv), and never sent twice.`

export const docs: Record<'single' | 'pipeline' | 'multi' | 'pathGet' | 'pathPost', { url: string; schema: FastifySchema }> = {
  single: {
    url: '/',
    schema: {
      operationId: 'upstashCommand',
      tags: ['upstash'],
      summary: 'Run one Redis command (Upstash REST: the JSON array form)',
      description: description('The whole command as a JSON array in the body (any content type): `["SET","k","v","EX",10]`. Answers `{"result": ...}`, or 400 `{"error": "..."}` for a Redis error.'),
      headers: requestHeaders,
      querystring: tokenQuery,
      security: [{ bearer: [] }, { upstashQueryToken: [] }],
      body: { content: { 'application/json': { schema: CommandSchema } } },
      response: { 200: { description: 'The command\'s answer', headers: okHeaders, content: { 'application/json': { schema: Result } } }, ...common(true) }
    } as FastifySchema
  },
  pipeline: {
    url: '/pipeline',
    schema: {
      operationId: 'upstashPipeline',
      tags: ['upstash'],
      summary: 'Run several Redis commands in one round trip (Upstash REST pipeline)',
      description: description('A JSON array of commands (at most UPSTASH_MAX_COMMANDS). Answered one by one, in order: `[{"result": ...}, {"error": "..."}]`; a failing (or refused) command does not stop the others. A pipeline holding any write runs on the master.'),
      headers: requestHeaders,
      querystring: tokenQuery,
      security: [{ bearer: [] }, { upstashQueryToken: [] }],
      body: { content: { 'application/json': { schema: { type: 'array', minItems: 1, items: CommandSchema } } } },
      response: { 200: { description: 'One answer per command, in order', headers: okHeaders, content: { 'application/json': { schema: { type: 'array', items: ResultOrError } } } }, ...common(true, true) }
    } as FastifySchema
  },
  multi: {
    url: '/multi-exec',
    schema: {
      operationId: 'upstashMultiExec',
      tags: ['upstash'],
      summary: 'Run several Redis commands as one transaction (Upstash REST MULTI/EXEC)',
      description: description('A JSON array of commands, run between MULTI and EXEC on the master (replica-confirmed when it writes). Answered per command like a pipeline; a command Redis refuses to queue, or one the gateway refuses, aborts the whole transaction (400, nothing applied).'),
      headers: requestHeaders,
      querystring: tokenQuery,
      security: [{ bearer: [] }, { upstashQueryToken: [] }],
      body: { content: { 'application/json': { schema: { type: 'array', minItems: 1, items: CommandSchema } } } },
      response: { 200: { description: 'One answer per command of the transaction, in order', headers: okHeaders, content: { 'application/json': { schema: { type: 'array', items: ResultOrError } } } }, ...common(true) }
    } as FastifySchema
  },
  pathGet: {
    url: '/{command}',
    schema: {
      operationId: 'upstashPathGet',
      tags: ['upstash'],
      summary: 'Run one Redis command given in the path (Upstash REST path form)',
      description: description('`/COMMAND/arg1/arg2/...`: each URL-decoded path segment is one argument, then each query parameter as `name[, value]` (`/set/k/v?EX=100`). A first segment that is not a Redis command answers the gateway\'s own 404.'),
      params: { type: 'object', properties: { command: { type: 'string', description: 'The Redis command; its arguments follow as further path segments' } }, required: ['command'] },
      headers: requestHeaders,
      querystring: tokenQuery,
      security: [{ bearer: [] }, { upstashQueryToken: [] }],
      response: { 200: { description: 'The command\'s answer', headers: okHeaders, content: { 'application/json': { schema: Result } } }, ...common(false) }
    } as FastifySchema
  },
  pathPost: {
    url: '/{command}',
    schema: {
      operationId: 'upstashPathPost',
      tags: ['upstash'],
      summary: 'Run one Redis command given in the path, with the request body as a value',
      description: description('Like the GET form; the request body (raw bytes, any content type: JSON or binary values) is appended after the path segments, then the query parameters: `POST /set/k?EX=100` with body `v` runs `SET k v EX 100`.'),
      params: { type: 'object', properties: { command: { type: 'string', description: 'The Redis command; its arguments follow as further path segments' } }, required: ['command'] },
      headers: requestHeaders,
      querystring: tokenQuery,
      security: [{ bearer: [] }, { upstashQueryToken: [] }],
      body: { content: { '*/*': { schema: { description: 'The last argument: raw bytes', contentMediaType: 'application/octet-stream' } } } },
      response: { 200: { description: 'The command\'s answer', headers: okHeaders, content: { 'application/json': { schema: Result } } }, ...common(true) }
    } as FastifySchema
  }
}
