/** pino options: JSON lines, secrets redacted wherever they could appear. */
import type { LoggerOptions } from 'pino'

/** Paths whose values never reach a log line. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  '*.password',
  '*.sentinelPassword',
  '*.redisPassword',
  'password',
  'token',
  '*.token'
]

export function loggerOptions (level: string): LoggerOptions {
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { service: 'sentinel-kv-gateway' }
  }
}
