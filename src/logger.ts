/**
 * pino options: JSON lines, secrets redacted wherever they could appear, written to stdout without
 * blocking the event loop; the per-request line and per-request loggers at the least cost.
 */
import type { FastifyRequest } from 'fastify'
import { pino, type Bindings, type ChildLoggerOptions, type DestinationStream, type Logger, type LoggerOptions } from 'pino'

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

/** Most bytes of log lines waiting for stdout before new lines are dropped (a stuck reader must not fill memory). */
const LOG_BUFFER_MAX_BYTES = 8 * 1024 * 1024

let destination: DestinationStream | undefined

/**
 * The process's stdout as pino's asynchronous destination (one per process, shared by every logger):
 * a line is queued and written by the event loop, lines written while a write is in flight go out
 * together, and nothing waits on a slow reader of stdout. pino writes what is queued synchronously
 * when the process exits (process.exit included). On AWS Lambda (src/lambda.ts) lines are written
 * synchronously: the runtime freezes the process as soon as an invocation answers, which would hold
 * back (or, at shutdown, lose) what is still queued.
 */
export function logDestination (env: NodeJS.ProcessEnv = process.env): DestinationStream {
  const sync = env.AWS_LAMBDA_FUNCTION_NAME !== undefined
  destination ??= pino.destination({ dest: 1, sync, ...(sync ? {} : { maxLength: LOG_BUFFER_MAX_BYTES }) })
  return destination
}

/** The options of a child that redacts nothing: for lines whose fields can never hold a secret. */
export const NO_REDACTION: ChildLoggerOptions = { redact: { paths: [] } }

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const
type LogMethod = (...args: unknown[]) => void

/**
 * The logger of one request (Fastify's `req.log`), created for every request: pino's child (its
 * bindings serialized through the redaction) is only made when the request logs a line at an
 * enabled level, which most requests never do (their one line is written by the LogController).
 */
export class RequestLogger {
  private real: Logger | undefined = undefined
  constructor (readonly parent: Logger, private readonly bindingsOf: Bindings) {}

  get level (): string { return this.parent.level }
  get log (): Logger { return (this.real ??= this.parent.child(this.bindingsOf)) }
  isLevelEnabled (level: string): boolean { return this.parent.isLevelEnabled(level) }
  child (bindings: Bindings, options?: ChildLoggerOptions): Logger { return this.log.child(bindings, options) }
  bindings (): Bindings { return this.log.bindings() }
  setBindings (bindings: Bindings): void { this.log.setBindings(bindings) }
  flush (): void { this.parent.flush() }
  silent (): void {}
  declare trace: LogMethod
  declare debug: LogMethod
  declare info: LogMethod
  declare warn: LogMethod
  declare error: LogMethod
  declare fatal: LogMethod
}
for (const level of LEVELS) {
  Object.defineProperty(RequestLogger.prototype, level, {
    value: function (this: RequestLogger, ...args: unknown[]): void {
      if (!this.parent.isLevelEnabled(level)) return
      ;(this.log[level] as LogMethod)(...args)
    }
  })
}

/**
 * Fastify's childLoggerFactory: a RequestLogger, or pino's own child when the route sets a level or
 * serializers of its own.
 */
export function requestLoggerFactory (logger: Logger, bindings: Bindings, opts: ChildLoggerOptions): Logger {
  if (opts.level !== undefined || opts.serializers !== undefined) return logger.child(bindings, opts)
  return new RequestLogger(logger, bindings) as unknown as Logger
}
