/**
 * @fastify/rate-limit keyed by the authenticated token's name (client address when anonymous),
 * counters on the Redis master so every gateway process shares one limit. It runs after
 * authentication (its hook is a route hook, after the app's and the Upstash routes' own), so a
 * token counts the same whether it came in the Authorization header or as `?_token=`.
 *
 * Counters live under the reserved prefix (`__skv:ratelimit:token:<name>`, `...:ip:<address>`),
 * which no route may read, write or list, and hold no token material. The limiter's connection logs
 * in with the control credentials: Redis ACL keeps the data user away from those keys.
 *
 * If Redis cannot be reached the limiter fails OPEN (the request is served, one warning per 10 s is
 * logged): a limiter must not turn an outage of its store into an outage of the API. What a counter
 * holds cannot make it fail open (rate-limit-store.ts).
 */
import rateLimit from '@fastify/rate-limit'
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import { OPEN_ACCESS } from '../auth.js'
import type { Config } from '../config.js'
import { GatewayError } from '../errors.js'
import { counterClusterClient } from '../cluster/counter-client.js'
import { closeClient } from '../redis/connections.js'
import { controlAuth } from '../redis/control-auth.js'
import { ioredisNatMap } from '../redis/nat.js'
import { tlsOptionsForAnyHost } from '../redis/tls.js'
import { RESERVED_KEY_PREFIX } from '../security/reserved.js'
import { clientAddress } from './auth-failures.js'
import { redisStore } from './rate-limit-store.js'

/** Where the counters live (inside the reserved prefix). */
export const RATE_LIMIT_PREFIX = `${RESERVED_KEY_PREFIX}ratelimit:`

/** The counter a request is counted under: its token's name, or its client address when anonymous. */
export function rateLimitKey (req: FastifyRequest): string {
  const p = req.principal
  return p === null || p === OPEN_ACCESS ? `ip:${clientAddress(req.ip)}` : `token:${p.name}`
}

export default fp<{ config: Config; onRejected: () => void }>(async (app, { config, onRejected }) => {
  if (config.rateLimit.max === 0) return
  // A sentinel-aware client: the store's counters follow the master through failovers.
  // TLS: ioredis copies `tls` onto whichever master it resolves, so it carries no servername
  // (unless REDIS_TLS_SERVERNAME is set): each master is checked against its own host.
  const natMap = ioredisNatMap(config.natMap)
  // Cluster mode: ioredis's Cluster client routes each counter to its slot's master.
  const redis = config.clusterNodes !== undefined ? counterClusterClient(config, config.clusterNodes) : new Redis({
    ...(config.sentinelTls !== undefined ? { sentinelTLS: tlsOptionsForAnyHost(config.sentinelTls) } : {}),
    ...(config.redisTls !== undefined ? { tls: tlsOptionsForAnyHost(config.redisTls), enableTLSForSentinelMode: true } : {}),
    ...(natMap !== undefined ? { natMap } : {}),
    sentinels: config.sentinels,
    name: config.masterName,
    sentinelUsername: config.sentinelUsername,
    sentinelPassword: config.sentinelPassword,
    // The control user: the data user is denied the reserved keys by Redis ACL.
    ...(controlAuth(config) ?? { username: config.redisUsername, password: config.redisPassword }),
    db: config.db,
    role: 'master',
    failoverDetector: true,
    connectTimeout: config.connectTimeoutMs,
    commandTimeout: config.commandTimeoutMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    // A node that stopped being the master under this connection (a demoted old master, or one a
    // lagging sentinel still named) answers READONLY to every count: ask the sentinels again.
    reconnectOnError: (err: Error) => /\bREADONLY\b/.test(err.message) ? 1 : false,
    connectionName: 'skv-gateway-ratelimit'
  })
  // At most one warning per 10 s each when the connection is down and when a count fails (e.g.
  // NOPERM: the control user may not run the script): either way the limiter is failing open.
  const warn = (msg: string): ((err: Error) => void) => {
    let last = 0
    return (err) => {
      if (Date.now() - last < 10_000) return
      last = Date.now()
      app.log.warn({ err: err.message }, msg)
    }
  }
  redis.on('error', warn('rate limiter cannot reach Redis: failing open'))
  app.addHook('onClose', async () => { if (redis instanceof Redis) closeClient(redis); else redis.disconnect() })
  await app.register(rateLimit, {
    max: config.rateLimit.max,
    timeWindow: config.rateLimit.windowMs,
    store: redisStore(redis, RATE_LIMIT_PREFIX, warn('rate limiter cannot count: failing open')),
    skipOnError: true,
    onExceeded: () => onRejected(),
    enableDraftSpec: true,
    keyGenerator: rateLimitKey,
    errorResponseBuilder: (_req, ctx) => new GatewayError('GW_ERR_RATE_LIMITED', `rate limit of ${ctx.max} requests per ${ctx.after} exceeded`, { retryAfter: Math.ceil(ctx.ttl / 1000) })
  })
}, { name: 'gateway-rate-limit' })
