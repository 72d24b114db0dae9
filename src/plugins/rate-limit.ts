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
import type { Config } from '../config.js'
import { GatewayError } from '../errors.js'

export default fp<{ config: Config; onRejected: () => void }>(async (app, { config, onRejected }) => {
  if (config.rateLimit.max === 0) return
  // A sentinel-aware client: the store's counters follow the master through failovers.
  const redis = new Redis({
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
  app.addHook('onClose', async () => { redis.disconnect() })
  await app.register(rateLimit, {
    max: config.rateLimit.max,
    timeWindow: config.rateLimit.windowMs,
    redis,
    nameSpace: 'skv-gateway-ratelimit:',
    skipOnError: true,
    onExceeded: () => onRejected(),
    enableDraftSpec: true,
    keyGenerator: (req) => {
      const h = req.headers.authorization
      return h === undefined ? `ip:${req.ip}` : `token:${createHash('sha256').update(h).digest('hex').slice(0, 24)}`
    },
    errorResponseBuilder: (_req, ctx) => new GatewayError('GW_ERR_RATE_LIMITED', `rate limit of ${ctx.max} requests per ${ctx.after} exceeded`, { retryAfter: Math.ceil(ctx.ttl / 1000) })
  })
}, { name: 'gateway-rate-limit' })
