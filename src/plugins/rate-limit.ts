/**
 * @fastify/rate-limit keyed by token (client IP when anonymous), counters on the Redis master so
 * every gateway process shares one limit. If Redis cannot be reached the limiter fails OPEN (the
 * request is served, one warning per 10 s is logged): a limiter must not turn an outage of its
 * store into an outage of the API.
 */
import { createHash } from 'node:crypto'
import rateLimit from '@fastify/rate-limit'
import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import { bearerToken } from '../auth.js'
import type { Config } from '../config.js'
import { GatewayError } from '../errors.js'
import { closeClient } from '../redis/connections.js'
import { ioredisNatMap } from '../redis/nat.js'
import { tlsOptionsForAnyHost } from '../redis/tls.js'

export default fp<{ config: Config; onRejected: () => void }>(async (app, { config, onRejected }) => {
  if (config.rateLimit.max === 0) return
  // A sentinel-aware client: the store's counters follow the master through failovers.
  // TLS: ioredis copies `tls` onto whichever master it resolves, so it carries no servername
  // (unless REDIS_TLS_SERVERNAME is set): each master is checked against its own host.
  const natMap = ioredisNatMap(config.natMap)
  const redis = new Redis({
    ...(config.sentinelTls !== undefined ? { sentinelTLS: tlsOptionsForAnyHost(config.sentinelTls) } : {}),
    ...(config.redisTls !== undefined ? { tls: tlsOptionsForAnyHost(config.redisTls), enableTLSForSentinelMode: true } : {}),
    ...(natMap !== undefined ? { natMap } : {}),
    sentinels: config.sentinels,
    name: config.masterName,
    sentinelUsername: config.sentinelUsername,
    sentinelPassword: config.sentinelPassword,
    username: config.redisUsername,
    password: config.redisPassword,
    db: config.db,
    role: 'master',
    failoverDetector: true,
    connectTimeout: config.connectTimeoutMs,
    commandTimeout: config.commandTimeoutMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    connectionName: 'skv-gateway-ratelimit'
  })
  let lastWarn = 0
  redis.on('error', (err: Error) => {
    if (Date.now() - lastWarn < 10_000) return
    lastWarn = Date.now()
    app.log.warn({ err: err.message }, 'rate limiter cannot reach Redis: failing open')
  })
  app.addHook('onClose', async () => { closeClient(redis) })
  await app.register(rateLimit, {
    max: config.rateLimit.max,
    timeWindow: config.rateLimit.windowMs,
    redis,
    nameSpace: 'skv-gateway-ratelimit:',
    skipOnError: true,
    onExceeded: () => onRejected(),
    enableDraftSpec: true,
    // The token as authentication reads it (so `bearer`/`Bearer  ` spellings share one budget);
    // an open gateway limits by IP whatever the client sends.
    keyGenerator: (req) => {
      const token = app.auth.open ? null : bearerToken(req.headers.authorization)
      return token === null ? `ip:${req.ip}` : `token:${createHash('sha256').update(token).digest('hex').slice(0, 24)}`
    },
    errorResponseBuilder: (_req, ctx) => new GatewayError('GW_ERR_RATE_LIMITED', `rate limit of ${ctx.max} requests per ${ctx.after} exceeded`, { retryAfter: Math.ceil(ctx.ttl / 1000) })
  })
}, { name: 'gateway-rate-limit' })
