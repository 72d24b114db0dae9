/**
 * The rate limiter's Redis store: @fastify/rate-limit's RedisStore, with a script that cannot be
 * turned against the limiter by what is in its counter. The library's script fails (INCR: "value is
 * not an integer") when a counter holds anything but an integer, and the limiter, which fails open
 * on store errors so that a Redis outage is not an API outage, then let every request through
 * (issue 10, finding 8: 300 of 50 passed). A counter without a TTL, or with one past the window,
 * would lock its token out forever. Here any such counter starts a new window instead.
 */
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit'
import type { Cluster, Redis } from 'ioredis'

/**
 * KEYS[1] the counter; ARGV[1] the window in ms. Returns {count, ttl ms}.
 * INCR through pcall: an error (not an integer, out of range, another type) restarts the window
 * at 1 (SET replaces a value of any type). A counter whose TTL is missing (-1) or longer than the
 * window (set by someone else) gets the window again.
 */
export const RATE_LIMIT_SCRIPT = `
local window = tonumber(ARGV[1])
local current = redis.pcall('INCR', KEYS[1])
if type(current) ~= 'number' then
  redis.call('SET', KEYS[1], 1, 'PX', window)
  return {1, window}
end
local ttl = redis.call('PTTL', KEYS[1])
if current == 1 or ttl < 0 or ttl > window then
  redis.call('PEXPIRE', KEYS[1], window)
  ttl = window
end
return {current, ttl}
`

type RateLimitRedis = (Redis | Cluster) & { skvRateLimit: (key: string, windowMs: number, cb: (err: Error | null, res?: [number, number]) => void) => void }

/**
 * A store class for @fastify/rate-limit's `store` option, counting under `prefix` on `redis`.
 * `onError` sees every failed count (the library swallows them when it fails open).
 */
export function redisStore (redis: Redis | Cluster, prefix: string, onError: (err: Error) => void = () => {}): FastifyRateLimitStoreCtor {
  if (!('skvRateLimit' in redis)) redis.defineCommand('skvRateLimit', { numberOfKeys: 1, lua: RATE_LIMIT_SCRIPT })
  const r = redis as RateLimitRedis
  class Store implements FastifyRateLimitStore {
    /** The library constructs the store with its options: the prefix comes from the closure (or child()). */
    keyPrefix = prefix

    incr (key: string, cb: (err: Error | null, res?: { current: number; ttl: number }) => void, timeWindow: number): void {
      r.skvRateLimit(this.keyPrefix + key, timeWindow, (err, res) => {
        if (err === null && res !== undefined) {
          cb(null, { current: res[0], ttl: res[1] })
          return
        }
        const e = err ?? new Error('no answer from the rate-limit script')
        onError(e)
        cb(e)
      })
    }

    /** A route with its own limits counts apart, as the library's store does (its typings name the argument wrongly). */
    child (routeOptions: unknown): FastifyRateLimitStore {
      const info = (routeOptions as { routeInfo?: { method?: unknown; url?: unknown } }).routeInfo ?? {}
      const store = new Store()
      store.keyPrefix = `${this.keyPrefix}${String(info.method)}${String(info.url)}-`
      return store
    }
  }
  return Store
}
