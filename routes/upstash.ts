/**
 * Upstash REST compatible endpoint: @upstash/redis works unchanged against the gateway (URL and
 * token change), with the gateway's routing (replicas for reads, replica-confirmed writes on the
 * master), breakers, retries and tokens. HTTP mapping only; see src/upstash/ and KvService.commands.
 *
 * Registered routes: POST /, POST /pipeline, POST /multi-exec, GET|POST /* (path form). The path
 * form only matches when the first segment is a Redis command (a router constraint): any other
 * path (/no/such/route, POST /kv/x, /kv/<key over the length limit>) is routed exactly as before
 * this plugin, and the gateway's own routes (static or more specific) always win.
 */
import type { SwaggerTransform } from '@fastify/swagger'
import type { FastifyError, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { ERROR_CODES, GatewayError } from '../src/errors.js'
import { documentRoute } from '../src/openapi.js'
import { type CommandReply, type CommandsResult, TransactionAbortedError } from '../src/upstash/runner.js'
import { CommandGate, filterReply } from '../src/security/gate.js'
import { type Arg, CommandRefused, type Decision, NoPermission, routeOf } from '../src/security/policy.js'
import { docs, UPSTASH_TAG, UpstashErrorSchema } from '../src/upstash/docs.js'
import { encodeResult, encodingOf, type JsonValue } from '../src/upstash/encoding.js'
import subscribeRoutes from './subscribe.js'
import {
  firstSegment, parseJsonBody, pathCommand, syncTokenOf, toCommand, toCommands, UpstashHttpError
} from '../src/upstash/protocol.js'

type Entry = { result: JsonValue } | { error: string }

/** What the router stores per constraint value (find-my-way's handler type, through Fastify's). */
type RouteHandle = Parameters<ReturnType<Parameters<FastifyInstance['addConstraintStrategy']>[0]['storage']>['set']>[1]

/** Router constraint: the first path segment is a Redis command. */
const COMMAND_CONSTRAINT = 'upstashCommand'

/** Adds the `upstash` tag to the document's tag list (the app declares its own tags; this plugin owns this one). */
const documented = (d: { url: string; schema: object }): SwaggerTransform => (({ openapiObject, route }: { openapiObject?: { tags?: Array<{ name: string }> }; route: Parameters<typeof documentRoute>[0]['route'] }) => {
  if (openapiObject !== undefined && !(openapiObject.tags ?? []).some(t => t.name === UPSTASH_TAG.name)) {
    openapiObject.tags = [...(openapiObject.tags ?? []), UPSTASH_TAG]
  }
  return documentRoute({ schema: d.schema, url: d.url, route })
}) as unknown as SwaggerTransform

const routes: FastifyPluginAsync = async (app) => {
  const { kv, gatewayConfig: config } = app
  // Every command is decided by the security policy, from the master's own command table.
  const gate = new CommandGate(config, app.topology, app.connections)
  // Read the (new) master's table as soon as it is known, so the path form knows its commands.
  app.topology.on('change', () => { gate.tables.current().catch(() => { /* read again by the next request */ }) })
  // Commands travel inside JSON: leave room for a few full-size values, like POST /kv/_batch.
  const bodyLimit = config.maxValueBytes * 4 + 65_536

  app.addSchema(UpstashErrorSchema)
  // Any content type (curl -d sends form-urlencoded; the SDK application/json): raw bytes, parsed by the routes.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body))

  // The path form matches only when the first path segment is a Redis command (else the router
  // goes on as if these routes did not exist: 404, or 400 for a /kv/ key over the length limit).
  if (!app.hasConstraintStrategy(COMMAND_CONSTRAINT)) {
    app.addConstraintStrategy({
      name: COMMAND_CONSTRAINT,
      // One store per router node.
      storage: () => {
        const handlers = new Map<string, RouteHandle>()
        return { get: (v: string) => handlers.get(v) ?? null, set: (v: string, h: RouteHandle) => { handlers.set(v, h) } }
      },
      deriveConstraint: (req: { url?: string }) => gate.isCommand(firstSegment(req.url ?? '')) ? 'yes' : 'no'
    })
  }

  // Our own authentication (the routes are `public` for the global hook), so that errors answer in
  // the Upstash shape; the token may also come as ?_token= (every spelling of it is redacted from
  // logged URLs, src/logger.ts). Same choke point as every route: 401s counted per address.
  app.addHook('onRequest', (req, _reply, done) => {
    try {
      req.principal = app.authenticateRequest(req, true)
    } catch (err) {
      done(err as Error)
      return
    }
    done()
  })

  app.setErrorHandler(async (err: FastifyError | Error, req, reply) => {
    const e = upstashError(err)
    if (e.status >= 500) {
      if (e.status === 500) req.log.error({ err }, 'unhandled error')
      else req.log.warn({ code: (err as GatewayError).code, cause: causeText(err.cause) }, err.message)
    }
    if (e.retryAfter !== undefined) reply.header('retry-after', e.retryAfter)
    if (e.status === 401) reply.header('www-authenticate', 'Bearer realm="sentinel-kv-gateway"')
    return await reply.code(e.status).send({ error: e.message })
  })

  const options = (d: { url: string; schema: object }): { bodyLimit: number; exposeHeadRoute: false; config: { public: true; swaggerTransform: SwaggerTransform } } =>
    ({ bodyLimit, exposeHeadRoute: false, config: { public: true, swaggerTransform: documented(d) } })
  const pathForm = { constraints: { [COMMAND_CONSTRAINT]: 'yes' } }

  app.post('/', options(docs.single), async (req, reply) => await single(req, reply, toCommand(parseJsonBody(req.body))))
  app.post('/pipeline', options(docs.pipeline), async (req, reply) =>
    await several(req, reply, toCommands(parseJsonBody(req.body), config.upstashMaxCommands), false))
  app.post('/multi-exec', options(docs.multi), async (req, reply) =>
    await several(req, reply, toCommands(parseJsonBody(req.body), config.upstashMaxCommands), true))
  app.get('/*', { ...options(docs.pathGet), ...pathForm }, async (req, reply) =>
    await single(req, reply, pathCommand(req.url, undefined)))
  app.post('/*', { ...options(docs.pathPost), ...pathForm }, async (req, reply) =>
    await single(req, reply, pathCommand(req.url, Buffer.isBuffer(req.body) ? req.body : undefined)))
  // GET|POST /subscribe/* and /psubscribe/*: streams, with this plugin's authentication and error shape.
  await app.register(subscribeRoutes)

  async function single (req: FastifyRequest, reply: FastifyReply, cmd: Arg[]): Promise<Entry> {
    const [decision] = await gate.check(req.principal, [cmd], false) as Decision[]
    const r = await run(req, reply, [cmd], [decision!], false)
    const [err, value] = r.replies[0]!
    if (err !== null) throw new UpstashHttpError(400, err.message)
    return { result: encodeResult(filterReply(decision!.filter, value), encodingOf(req.headers['upstash-encoding'])) }
  }

  /**
   * A pipeline: refused commands (unknown, denied, not allowed to the token) answer their own
   * error and are not sent; the others run in one round trip. A transaction is refused as a whole.
   */
  async function several (req: FastifyRequest, reply: FastifyReply, cmds: Arg[][], transaction: boolean): Promise<Entry[]> {
    const checked = await gate.check(req.principal, cmds, !transaction)
    const runnable = checked.flatMap((c, i) => c instanceof Error ? [] : [i])
    let replies: CommandReply[] = []
    if (runnable.length > 0) {
      const r = await run(req, reply, runnable.map(i => cmds[i]!), runnable.map(i => checked[i] as Decision), transaction)
      replies = r.replies
    } else {
      const token = syncTokenOf(req.headers['upstash-sync-token'])
      if (token !== undefined) reply.header('upstash-sync-token', String(token))
    }
    const enc = encodingOf(req.headers['upstash-encoding'])
    let next = 0
    return checked.map((c): Entry => {
      if (c instanceof Error) return { error: c.message }
      const [err, value] = replies[next++]!
      return err !== null ? { error: err.message } : { result: encodeResult(filterReply(c.filter, value), enc) }
    })
  }

  async function run (req: FastifyRequest, reply: FastifyReply, cmds: Arg[][], infos: Decision[], transaction: boolean): Promise<CommandsResult> {
    const route = routeOf(infos)
    const token = syncTokenOf(req.headers['upstash-sync-token'])
    // The name sent is the one the policy decided on (the server's own, lower-case), never the client's spelling.
    const r = await kv.commands(cmds.map(([, ...args], i) => [infos[i]!.name, ...args]), {
      route: transaction && route === 'replica' ? 'master' : route,
      transaction,
      readOnly: infos.map(i => i.readOnly),
      ...(token === undefined ? {} : { syncToken: token })
    })
    reply.header('x-served-by', r.servedBy)
    const sync = r.syncToken ?? (token === undefined ? undefined : String(token))
    if (sync !== undefined) reply.header('upstash-sync-token', sync)
    return r
  }
}

/** Any error of these routes as an Upstash answer: status and `error` text. */
function upstashError (err: FastifyError | Error): { status: number; message: string; retryAfter?: number } {
  if (err instanceof UpstashHttpError) return { status: err.statusCode, message: err.message, ...(err.retryAfter === undefined ? {} : { retryAfter: err.retryAfter }) }
  if (err instanceof CommandRefused || err instanceof TransactionAbortedError) return { status: 400, message: err.message }
  if (err instanceof NoPermission) return { status: 403, message: err.message }
  if (err instanceof GatewayError) {
    return {
      status: ERROR_CODES[err.code],
      message: err.code === 'GW_ERR_INTERNAL' ? 'GW_ERR_INTERNAL internal error' : `${err.code} ${err.message}`,
      ...(err.retryAfter === undefined ? {} : { retryAfter: err.retryAfter })
    }
  }
  const status = (err as FastifyError).statusCode ?? 500
  if (status < 500) {
    const code = (err as FastifyError).code
    return { status, message: code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'ERR the request body is too large' : `ERR ${err.message}` }
  }
  return { status: 500, message: 'GW_ERR_INTERNAL internal error' }
}

function causeText (cause: unknown): string | undefined {
  return cause instanceof Error ? `${cause.name}: ${cause.message}` : cause === undefined ? undefined : String(cause)
}

export default routes
