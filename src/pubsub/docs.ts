/**
 * OpenAPI description of the subscription streams (tag `upstash`), attached like the other Upstash
 * routes through a per-route `swaggerTransform`: the route parses its path itself, so the schema
 * documents without validating.
 */
import type { SwaggerTransform } from '@fastify/swagger'
import { documentRoute } from '../openapi.js'
import type { SubscriptionKind } from './rights.js'

type RouteSchema = Parameters<typeof documentRoute>[0]['schema']

const err = (description: string, headers?: Record<string, unknown>): Record<string, unknown> =>
  ({ description, ...(headers === undefined ? {} : { headers }), content: { 'application/json': { schema: { $ref: 'UpstashError' } } } })

const retryAfter = { 'retry-after': { type: 'integer', minimum: 0, description: 'Seconds to wait before retrying' } }

const FORMAT = 'Server-Sent Events, one `data:` line per event, fields separated by commas (the format of @upstash/redis\'s `subscribe`/`psubscribe`): ' +
  '`subscribe,<channel>,<count>` (`psubscribe,<pattern>,<count>`) once per name when the subscription is in place; ' +
  '`message,<channel>,<message>` (`pmessage,<pattern>,<channel>,<message>`) per message; ' +
  '`gap,<reason>,<ISO time>` when messages published since that time may have been missed (the subscriber connection was lost, moved, or a failover happened; reason `connection-lost`, `node-switch` or `master-change`); ' +
  '`unsubscribe,<channel>,<count>` (`punsubscribe,...`) per name when the gateway ends the stream (shutdown). ' +
  'A `: ping` comment every PUBSUB_HEARTBEAT_MS. Text is UTF-8; a field holding a line break is sent as a JSON string. Delivery is at-most-once (Redis pub/sub).'

/** What differs between the three kinds of stream. */
const KINDS = {
  subscribe: { op: 'Subscribe', summary: 'Subscribe to channels: a stream of their messages', one: 'channel', where: '' },
  psubscribe: { op: 'PSubscribe', summary: 'Subscribe to channel patterns: a stream of the matching messages', one: 'pattern (Redis glob: `*`, `?`, `[...]`, `\\\\`)', where: '' },
  ssubscribe: {
    op: 'SSubscribe',
    summary: 'Subscribe to sharded channels (SSUBSCRIBE): a stream of what SPUBLISH sends them',
    one: 'sharded channel',
    where: 'Sharded channels are held on the master serving their hash slot (Redis Cluster mode: all channels of one request must share a slot, else 400 `CROSSSLOT`; Sentinel mode: the master), followed there across failovers and slot moves (each a `gap`). Events are `ssubscribe`, `smessage` and `sunsubscribe`. '
  }
} as const

function schema (kind: SubscriptionKind, method: 'GET' | 'POST'): RouteSchema {
  const what = kind === 'psubscribe' ? 'patterns' : 'channels'
  const k = KINDS[kind]
  return {
    operationId: `upstash${k.op}${method === 'GET' ? 'Get' : 'Post'}`,
    tags: ['upstash'],
    summary: `${k.summary} (Server-Sent Events${method === 'GET' ? ', for EventSource' : ''})`,
    description: `\`/${kind}/<name>/<name>...\`: each URL-decoded path segment is one ${k.one}. ${k.where}` +
      (method === 'GET' ? 'For a browser\'s `EventSource` (which cannot send headers): the token may come as `?_token=`. ' : kind === 'ssubscribe' ? 'For HTTP clients (`Accept: text/event-stream`, body ignored). ' : 'What @upstash/redis sends (`Accept: text/event-stream`, body ignored). ') +
      'Needs the `p` right; a token limited to a prefix subscribes only to channels (patterns) starting with it, and no channel or pattern may start with `__` (Redis\'s and Sentinel\'s own). ' +
      (kind === 'ssubscribe' ? '' : 'Patterns may match reserved channels (e.g. `*`): those messages are never delivered. ' +
        'One Redis subscriber connection per gateway process, on a healthy replica (the master as fallback), carries every stream. ') +
      `At most PUBSUB_MAX_STREAMS_PER_TOKEN open streams per token. A client that leaves more than PUBSUB_MAX_BUFFERED_BYTES unread is disconnected.\n\n${FORMAT}`,
    params: { type: 'object', properties: { [what]: { type: 'string', description: `The ${what}, one per path segment (URL-encoded)` } }, required: [what] },
    headers: {
      type: 'object',
      properties: {
        authorization: { type: 'string', description: '`Bearer <token>` (a token of AUTH_TOKENS with the `p` right); or the `_token` query parameter' },
        accept: { type: 'string', description: '`text/event-stream` (required: without it the answer is 406)' }
      }
    },
    querystring: { type: 'object', properties: { _token: { type: 'string', description: 'The bearer token, when no Authorization header is sent (EventSource); redacted from logs' } } },
    security: [{ bearer: [] }, { upstashQueryToken: [] }],
    response: {
      200: {
        description: 'The stream of events, open until the client leaves or the gateway shuts down',
        headers: { 'cache-control': { type: 'string', description: '`no-cache`' } },
        content: { 'text/event-stream': { schema: { type: 'string', description: FORMAT } } }
      },
      400: err(`A malformed request: no name, more than 64, an empty one, one longer than KV_MAX_KEY_BYTES, or a path segment that is not percent-encoded UTF-8${kind === 'ssubscribe' ? '; in Redis Cluster mode, channels of different hash slots (CROSSSLOT)' : ''}`),
      401: err('Missing or unknown token', { 'www-authenticate': { type: 'string', description: 'Bearer challenge' } }),
      403: err('NOPERM: the token has no `p` right, names a channel or pattern outside its prefix, or one starting with `__` (reserved)'),
      406: err('The request does not accept `text/event-stream` (send `Accept: text/event-stream`): the answer is a stream that does not end'),
      429: err('This token already holds PUBSUB_MAX_STREAMS_PER_TOKEN open streams in this gateway process (or too many requests: RATE_LIMIT_MAX, AUTH_FAILURES_MAX)', retryAfter),
      500: err('Internal error'),
      503: err('No Redis node took the subscription in time, or the process holds PUBSUB_MAX_STREAMS streams; nothing stays subscribed', retryAfter)
    }
  }
}

/** The `config` of a documented subscription route: the schema it is documented with, at its OpenAPI path. */
export function streamRouteDoc (kind: SubscriptionKind, method: 'GET' | 'POST'): SwaggerTransform {
  const url = `/${kind}/{${kind === 'psubscribe' ? 'patterns' : 'channels'}}`
  const s = schema(kind, method)
  return (({ route }: { route: Parameters<typeof documentRoute>[0]['route'] }) => documentRoute({ schema: s, url, route })) as unknown as SwaggerTransform
}
