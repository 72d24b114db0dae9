/**
 * Server assembly: Fastify with the services decorated on it, one error handler, the routes.
 */
import { randomUUID } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import swagger from '@fastify/swagger'
import underPressure from '@fastify/under-pressure'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import batchRoutes from '../routes/batch.js'
import metricsRoutes from '../routes/metrics.js'
import kvRoutes from '../routes/kv.js'
import topologyRoutes from '../routes/topology.js'
import { Auth, loadTokens } from './auth.js'
import type { Config } from './config.js'
import { errorBody, GatewayError } from './errors.js'
import { loggerOptions, redactUrl } from './logger.js'
import { Metrics } from './metrics.js'
import authPlugin from './plugins/auth.js'
import corsPlugin from './plugins/cors.js'
import crossSitePlugin from './plugins/cross-site.js'
import docsPlugin from './plugins/docs.js'
import rateLimitPlugin from './plugins/rate-limit.js'
import securityPlugin from './plugins/security.js'
import { ErrorSchema } from './schemas.js'
import { createServices, type Services } from './services.js'

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

/** Exactly one log line per request, written when it completes. */
class OneLinePerRequest extends LogController {
  override incomingRequest (): void {}
  override requestCompleted (error: Error | null | undefined, req: FastifyRequest, reply: FastifyReply): void {
    const line = { method: req.method, url: redactUrl(req.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 }
    if (error != null) req.log.error({ ...line, err: error }, 'request failed')
    else req.log.info(line, 'request')
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

/** How a client authenticates, as the OpenAPI document states it. */
const SECURITY_SCHEMES = {
  bearer: {
    type: 'http' as const,
    scheme: 'bearer',
    description: 'A token of AUTH_TOKENS / AUTH_TOKENS_FILE. Its rights decide what it may do: `r` read, `w` write, ' +
      '`x` scripts, `p` publish, `o` operations (/topology, /metrics), and an optional key prefix limits it to keys ' +
      '(and channels) starting with it. Missing or unknown: 401; a right or key it lacks: 403; after AUTH_FAILURES_MAX ' +
      '401s from one address: 429. With no token configured the gateway is open (`r` and `w`, /topology and /metrics ' +
      'open too) and needs no Authorization header.'
  },
  upstashQueryToken: {
    type: 'apiKey' as const,
    in: 'query' as const,
    name: '_token',
    description: 'The Upstash-compatible routes also take the token as `?_token=` (as Upstash does): same token, same rights and budget.'
  }
}

export interface BuildOptions {
  /** Skip connecting to Redis (used only to generate openapi.yaml). */
  offline?: boolean
}

export async function buildApp (config: Config, opts: BuildOptions = {}): Promise<FastifyInstance> {
  // Before anything connects: a bad token list is a configuration error.
  const auth = new Auth(loadTokens(config.authTokens, config.authTokensFile))
  const app = Fastify({
    requestTimeout: config.requestTimeoutMs,
    logger: loggerOptions(config.logLevel),
    logController: new OneLinePerRequest(),
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

  const services = createServices(config, app.log as unknown as Logger)
  app.decorate('gatewayConfig', config)
  app.decorate('connections', services.connections)
  app.decorate('topology', services.topology)
  app.decorate('breakers', services.breakers)
  app.decorate('router', services.router)
  app.decorate('kv', services.kv)
  app.decorate('near', services.near)
  const metrics = new Metrics(services.topology, services.breakers, services.near?.cache)
  app.decorate('metrics', metrics)
  app.addHook('onClose', async () => services.close())
  // Requests still in flight at shutdown answer with Connection: close, so their keep-alive
  // sockets do not hold the process open after the last answer.
  let closing = false
  app.addHook('preClose', async () => { closing = true })
  // Per-request hooks take a callback rather than being async: no promise per hook and request.
  app.addHook('onSend', (_req, reply, _payload, done) => {
    if (closing) reply.header('connection', 'close')
    done()
  })

  app.addHook('onRequest', (req, reply, done) => {
    reply.header('x-request-id', req.id)
    done()
  })
  app.addHook('onResponse', (req, reply, done) => {
    const servedBy = reply.getHeader('x-served-by')
    metrics.observeRequest(req.routeOptions.url ?? 'unmatched', req.method, reply.statusCode, typeof servedBy === 'string' ? servedBy : 'none', reply.elapsedTime / 1000)
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
      const code = FASTIFY_CODES[err.code] ?? 'GW_ERR_BAD_REQUEST'
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
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Sentinel KV gateway',
        version: '0.1.0',
        description: 'HTTP key/value gateway in front of a Redis Sentinel deployment: writes go to the master and are acknowledged once the replicas that could be promoted have them; reads are spread over healthy replicas.'
      },
      servers: [{ url: 'http://localhost:3000', description: 'A gateway running locally (PORT defaults to 3000)' }],
      tags: [{ name: 'kv', description: 'Key/value operations' }, { name: 'operations', description: 'Topology and health' }],
      components: { securitySchemes: SECURITY_SCHEMES },
      // Every route needs a token once AUTH_TOKENS is set; the public ones say `security: []`.
      security: [{ bearer: [] }]
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) }
  })
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
  await app.register(securityPlugin)
  await app.register(corsPlugin, { origins: config.corsOrigins })
  await app.register(crossSitePlugin, { origins: config.corsOrigins })
  await app.register(authPlugin, { auth, failures: config.authFailures, onBlocked: () => metrics.rateLimited.inc() })
  await app.register(rateLimitPlugin, { config, onRejected: () => metrics.rateLimited.inc() })
  if (opts.offline !== true) await app.register(docsPlugin)
  await app.register(kvRoutes)
  await app.register(batchRoutes)
  await app.register(import('../routes/upstash.js'))
  await app.register(metricsRoutes)
  await app.register(topologyRoutes)

  if (opts.offline === true) services.close()
  else await services.topology.start()
  return app
}

function causeText (cause: unknown): string | undefined {
  return cause instanceof Error ? `${cause.name}: ${cause.message}` : cause === undefined ? undefined : String(cause)
}
