/** pino options: JSON lines, secrets redacted wherever they could appear. */
import type { FastifyRequest } from 'fastify'
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

/** What replaces a secret in a log line. */
export const CENSOR = '[redacted]'

/**
 * A query parameter name that may carry a secret, tested on the name decoded as URLSearchParams
 * decodes it (the way `?_token=` is read, src/auth.ts `queryToken`) and on the name as sent, each
 * with its letters only: any spelling that authenticates (`_token`, `%5Ftoken`, `_tok%65n`) and any
 * that merely looks like one (`_TOKEN`, `access_token`, `_to+ken`, `?_token` after a second `?`).
 */
const SECRET_NAME = /token|auth|secret|passw/i
const NOT_LETTERS = /[^a-z]+/gi

function mayHoldSecret (raw: string): boolean {
  if (SECRET_NAME.test(raw.replace(NOT_LETTERS, ''))) return true
  if (!raw.includes('%')) return false
  // A name alone (no '=' or '&' in it) is one parameter: its decoded name.
  for (const name of new URLSearchParams(raw).keys()) return SECRET_NAME.test(name.replace(NOT_LETTERS, ''))
  return false
}

/**
 * The request URL as logged: the value of every query parameter whose name may carry a secret is
 * replaced by `[redacted]`. Without a query string the URL is returned as it is (no allocation).
 */
export function redactUrl (url: string): string {
  const q = url.indexOf('?')
  if (q < 0) return url
  const pairs = url.slice(q + 1).split('&')
  let changed = false
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i]!
    const eq = pair.indexOf('=')
    if (eq < 0) continue
    const name = pair.slice(0, eq)
    if (!mayHoldSecret(name)) continue
    pairs[i] = `${name}=${CENSOR}`
    changed = true
  }
  return changed ? `${url.slice(0, q + 1)}${pairs.join('&')}` : url
}

/** Fastify's `req` serializer (used by its own error lines), with the URL redacted. */
function reqSerializer (req: FastifyRequest): Record<string, unknown> {
  return { method: req.method, url: redactUrl(req.url), host: req.host, remoteAddress: req.ip, remotePort: req.socket?.remotePort }
}

export function loggerOptions (level: string): LoggerOptions {
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: CENSOR },
    base: { service: 'sentinel-kv-gateway' },
    serializers: { req: reqSerializer }
  }
}
