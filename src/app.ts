/**
 * Server assembly: Fastify with the services decorated on it, one error handler, the routes.
 */
import { randomUUID } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import swagger from '@fastify/swagger'
import underPressure from '@fastify/under-pressure'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { LogController, type FastifyError, type FastifyServerOptions, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import batchRoutes from '../routes/batch.js'
import metricsRoutes from '../routes/metrics.js'
import kvRoutes from '../routes/kv.js'
import topologyRoutes from '../routes/topology.js'
import uiRoutes from '../routes/ui.js'
import { Auth, loadTokens } from './auth.js'
import type { Config } from './config.js'
import { errorBody, GatewayError } from './errors.js'
import { logDestination, loggerOptions, NO_REDACTION, redactUrl, requestLoggerFactory } from './logger.js'
import { Metrics } from './metrics.js'
import { swaggerOptions } from './openapi.js'
import authPlugin from './plugins/auth.js'
import corsPlugin from './plugins/cors.js'
import crossSitePlugin from './plugins/cross-site.js'
import docsPlugin from './plugins/docs.js'
import rateLimitPlugin from './plugins/rate-limit.js'
import securityPlugin from './plugins/security.js'
import { closeSilentSocketsOnShutdown } from './plugins/silent-sockets.js'
import { addRequestHooks, replyHeaders, routeConfig } from './request-hook.js'
import { ErrorSchema } from './schemas.js'
import { createServices, type Services } from './services.js'
import { clusterMetrics } from './cluster/metrics.js'

declare module 'fastify' {
  interface FastifyInstance extends Omit<Services, 'close'> {
    gatewayConfig: Config
    metrics: Metrics
  }
}

/** Fastify's own client-error codes mapped to ours. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'GW_ERR_VALUE_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'GW_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_VALIDATION: 'GW_ERR_BAD_REQUEST'
}

/** Other client errors from plugins (e.g. @fastify/static's 403 for `..`): our code for their status. */
const STATUS_CODES_OF: Record<number, string> = {
  403: 'GW_ERR_FORBIDDEN', 404: 'GW_ERR_NOT_FOUND', 405: 'GW_ERR_METHOD_NOT_ALLOWED', 413: 'GW_ERR_VALUE_TOO_LARGE',
  415: 'GW_ERR_UNSUPPORTED_MEDIA_TYPE', 429: 'GW_ERR_RATE_LIMITED', 431: 'GW_ERR_HEADERS_TOO_LARGE'
}

/**
 * Exactly one log line per request, written when it completes. A line without an error holds no
 * secret (the URL is redacted here): it goes through a child of the root logger that redacts
 * nothing, with the request id as a field (the same JSON as from the request's own logger).
 */
class OneLinePerRequest extends LogController {
  private plain: Logger | undefined
  /** `root`: the app's logger, asked once the first request completes (after any setBindings). */
  constructor (private readonly root: () => Logger) { super() }

  override incomingRequest (): void {}
  override requestCompleted (error: Error | null | undefined, req: FastifyRequest, reply: FastifyReply): void {
    if (error != null) {
      req.log.error({ method: req.method, url: redactUrl(req.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10, err: error }, 'request failed')
      return
    }
    const log = this.plain ??= this.root().child({}, NO_REDACTION)
    if (!log.isLevelEnabled('info')) return
    log.info({ reqId: req.id, method: req.method, url: redactUrl(req.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 }, 'request')
  }

  // Only Fastify's default 404 handler calls this (ours replaces it): still, never the raw URL.
  override routeNotFound (req: FastifyRequest): void {
    req.log.info(`Route ${req.method}:${redactUrl(req.url)} not found`)
  }
}

/**
 * TRUST_PROXY as Fastify's option. A hop count becomes a function trusting the first `hops` hops
 * (socket peer first, as Express does): Fastify 5 ignores a number (it trusts no hop at all).
 */
export function trustProxyOption (trust: false | number | string[]): boolean | string[] | ((addr: string, hop: number) => boolean) {
  if (typeof trust !== 'number') return trust
  return (_addr, hop) => hop < trust
}

export interface BuildOptions {
  /** Skip connecting to Redis (used only to generate openapi.yaml). */
  offline?: boolean
}

export async function buildApp (config: Config, opts: BuildOptions = {}): Promise<FastifyInstance> {
  // Before anything connects: a bad token list is a configuration error.
  const auth = new Auth(loadTokens(config.authTokens, config.authTokensFile))
  let root: Logger | undefined
  const app = Fastify({
    requestTimeout: config.requestTimeoutMs,
    logger: { ...loggerOptions(config.logLevel), ...(config.logLevel === 'silent' ? {} : { stream: logDestination() }) },
    logController: new OneLinePerRequest(() => root!),
    childLoggerFactory: requestLoggerFactory as unknown as FastifyServerOptions['childLoggerFactory'],
    // When X-Forwarded-For names the client (rate limits, 401 limits): TRUST_PROXY.
    trustProxy: trustProxyOption(config.trustProxy),
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    // Keys are validated by our own byte limit (400), not cut by the router (404).
    routerOptions: { maxParamLength: config.maxKeyBytes * 3 + 64 },
    // No type coercion: every query parameter and header is a string schema, and a batch value
    // that is a number or null must be refused, not stored as "42" or "".
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
    // A request without Host still gets our JSON error shape (from the routes), not Node's empty 400.
    http: { requireHostHeader: false },
    // Malformed HTTP never reaches Fastify's routing: answer it in our shape and close.
    clientErrorHandler: (err: Error & { code?: string }, socket) => {
      const tooLarge = err.code === 'HPE_HEADER_OVERFLOW'
      const status = tooLarge ? 431 : 400
      const body = JSON.stringify(errorBody(tooLarge ? 'GW_ERR_HEADERS_TOO_LARGE' : 'GW_ERR_BAD_REQUEST',
        tooLarge ? 'the request headers are too large' : 'malformed HTTP request'))
      if (socket.writable) {
        socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
      } else socket.destroy()
    },
    // Errors raised by the router before any route runs: same JSON shape as everything else.
    frameworkErrors: (err, req, reply) => {
      reply.header('x-request-id', req.id)
      // Both can only come from the one path parameter we have: the key.
      const message = err.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? `the key must be 1 to ${config.maxKeyBytes} bytes after URL decoding`
        : 'the key is not valid percent-encoded UTF-8'
      void (reply as FastifyReply).code(400).send(errorBody('GW_ERR_KEY_INVALID', message))
    }
  }).withTypeProvider<TypeBoxTypeProvider>()
  root = app.log as unknown as Logger

  const services = createServices(config, app.log as unknown as Logger)
  app.decorate('gatewayConfig', config)
  app.decorate('connections', services.connections)
  app.decorate('topology', services.topology)
  app.decorate('breakers', services.breakers)
  app.decorate('router', services.router)
  app.decorate('kv', services.kv)
  app.decorate('near', services.near)
  app.decorate('cluster', services.cluster)
  const metrics = new Metrics(services.topology, services.breakers, services.near?.cache)
  if (services.cluster !== undefined) clusterMetrics(metrics.registry, services.cluster)
  app.decorate('metrics', metrics)
  app.addHook('onClose', async () => services.close())
  // Requests still in flight at shutdown answer with Connection: close, so their keep-alive
  // sockets do not hold the process open after the last answer.
  let closing = false
  app.addHook('preClose', async () => { closing = true })
  closeSilentSocketsOnShutdown(app)
  // Per-request hooks take a callback rather than being async: no promise per hook and request.
  app.addHook('onSend', (_req, reply, _payload, done) => {
    if (closing) reply.header('connection', 'close')
    done()
  })

  // Request id, security headers, cross-site refusal, authentication: one hook, or two around load
  // shedding and CORS (src/request-hook.ts); the second part is added once their plugins are in.
  const checksAdded = addRequestHooks(app, config.eventLoopMaxDelayMs > 0 || config.corsOrigins.length > 0)
  app.addHook('onResponse', (req, reply, done) => {
    const servedBy = replyHeaders(reply)['x-served-by']
    metrics.observeRequest(routeConfig(req).url ?? 'unmatched', req.method, reply.statusCode, typeof servedBy === 'string' ? servedBy : 'none', reply.elapsedTime / 1000)
    done()
  })

  app.setErrorHandler((err: FastifyError | GatewayError, req, reply) => {
    if (err instanceof GatewayError) {
      if (err.statusCode >= 500) req.log.warn({ code: err.code, cause: causeText(err.cause) }, err.message)
      if (err.retryAfter !== undefined) reply.header('retry-after', err.retryAfter)
      if (err.code === 'GW_ERR_UNAUTHORIZED') reply.header('www-authenticate', 'Bearer realm="sentinel-kv-gateway"')
      return reply.code(err.statusCode).send(errorBody(err.code, err.message))
    }
    const status = err.statusCode ?? 500
    if (status < 500) {
      const code = FASTIFY_CODES[err.code] ?? STATUS_CODES_OF[status] ?? 'GW_ERR_BAD_REQUEST'
      const message = err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? `the value is larger than ${config.maxValueBytes} bytes` : err.message
      return reply.code(status).send(errorBody(code, message))
    }
    req.log.error({ err }, 'unhandled error')
    return reply.code(500).send(errorBody('GW_ERR_INTERNAL', 'internal error'))
  })
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send(errorBody('GW_ERR_NOT_FOUND', `no route for ${req.method} ${req.url.split('?')[0]}`))
  })

  // The root scope takes JSON only (batch); text bodies are for the KV routes' own raw parser.
  app.removeContentTypeParser('text/plain')
  app.addSchema(ErrorSchema)
  await app.register(swagger, swaggerOptions('0.1.0'))
  if (config.eventLoopMaxDelayMs > 0) {
    await app.register(underPressure, {
      maxEventLoopDelay: config.eventLoopMaxDelayMs,
      // Sample often enough that a stall is seen while it lasts (default is once a second).
      sampleInterval: Math.max(10, Math.min(1000, Math.floor(config.eventLoopMaxDelayMs / 2))),
      pressureHandler: (_req, reply, type, value) => {
        app.log.warn({ type, value }, 'overloaded: shedding load')
        reply.code(503).header('retry-after', 1).send(errorBody('GW_ERR_OVERLOADED', 'the gateway is overloaded; retry shortly'))
      }
    })
  }
  await app.register(securityPlugin, { applyHeaders: false })
  await app.register(corsPlugin, { origins: config.corsOrigins })
  await app.register(crossSitePlugin, { origins: config.corsOrigins, ownHook: false })
  await app.register(authPlugin, { auth, failures: config.authFailures, onBlocked: () => metrics.rateLimited.inc(), ownHook: false })
  await app.register(rateLimitPlugin, { config, onRejected: () => metrics.rateLimited.inc() })
  checksAdded()
  if (opts.offline !== true) await app.register(docsPlugin)
  await app.register(kvRoutes)
  await app.register(batchRoutes)
  await app.register(import('../routes/upstash.js'))
  await app.register(metricsRoutes)
  await app.register(topologyRoutes)
  await app.register(uiRoutes)

  if (opts.offline === true) services.close()
  else await services.topology.start()
  return app
}

function causeText (cause: unknown): string | undefined {
  return cause instanceof Error ? `${cause.name}: ${cause.message}` : cause === undefined ? undefined : String(cause)
}
