/**
 * The work every request gets before its route runs, in as few Fastify hooks as possible (each
 * hook costs a runner step per request): the request id and security headers, then the cross-site
 * refusal and authentication. With neither load shedding nor CORS configured (no other plugin hook
 * has to run between them) it is one hook; otherwise the headers come first (so a 503 from load
 * shedding or a CORS preflight answer carries them, as before) and the checks after CORS (so a 401
 * carries the CORS headers a browser needs to read it).
 *
 * Two Fastify internals are read here, because their public getters allocate on every request:
 * the route's context (`req.routeOptions` builds a 12-field object; only its `config` is needed) and
 * the reply's header object (`reply.headers()` lower-cases and checks each name: ours are constant and
 * lower-case already). fastify is pinned; a version without them fails at start (`fastifyInternals`).
 */
import { createRequire } from 'node:module'
import type { FastifyContextConfig, FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'

interface Internals { kRouteContext: symbol; kReplyHeaders: symbol }

function fastifyInternals (): Internals {
  const symbols = createRequire(import.meta.url)('fastify/lib/symbols.js') as Partial<Internals>
  if (typeof symbols.kRouteContext !== 'symbol' || typeof symbols.kReplyHeaders !== 'symbol') {
    throw new Error('fastify/lib/symbols.js has no kRouteContext/kReplyHeaders: src/request-hook.ts needs updating for this Fastify version')
  }
  return symbols as Internals
}
const { kRouteContext, kReplyHeaders } = fastifyInternals()

/** The route's config (`req.routeOptions.config`, with `url` and `method`) without building routeOptions. */
export function routeConfig (req: FastifyRequest): FastifyContextConfig & { url?: string } {
  return (req as unknown as Record<symbol, { config: FastifyContextConfig & { url?: string } }>)[kRouteContext]!.config
}

/** The reply's headers as Fastify will send them (lower-case names). */
export function replyHeaders (reply: FastifyReply): Record<string, unknown> {
  return (reply as unknown as Record<symbol, Record<string, unknown>>)[kReplyHeaders]!
}

/**
 * Adds the hooks to `app`. Call it where the first hook must run (before load shedding); it returns
 * a function to call once the security, CORS, cross-site and auth plugins are registered.
 * `split`: load shedding or CORS hooks run between the two parts.
 */
export function addRequestHooks (app: FastifyInstance, split: boolean): () => void {
  let headers: Record<string, string> = {}
  let removed: readonly string[] = []
  let crossSite: FastifyInstance['crossSiteRefusal'] = null
  let authenticate: FastifyInstance['authenticateRoute'] = () => {}

  const setHeaders = (req: FastifyRequest, reply: FastifyReply): void => {
    for (let i = 0; i < removed.length; i++) reply.raw.removeHeader(removed[i]!)
    const out = replyHeaders(reply)
    out['x-request-id'] = req.id
    Object.assign(out, headers)
  }
  /** The refusal of the request, or undefined when it may go on. */
  const check = (req: FastifyRequest): Error | undefined => {
    if (crossSite !== null) {
      const refused = crossSite(req)
      if (refused !== undefined) return refused
    }
    try {
      authenticate(req, routeConfig(req))
    } catch (err) {
      return err as Error
    }
    return undefined
  }

  // Callback hooks, not async ones: no promise per hook and request.
  const first: onRequestHookHandler = split
    ? (req, reply, done) => { setHeaders(req, reply); done() }
    : (req, reply, done) => { setHeaders(req, reply); done(check(req)) }
  app.addHook('onRequest', first)

  return () => {
    ({ headers, removed } = app.securityHeaders)
    crossSite = app.crossSiteRefusal
    authenticate = app.authenticateRoute
    if (split) app.addHook('onRequest', (req, _reply, done) => { done(check(req)) })
  }
}
