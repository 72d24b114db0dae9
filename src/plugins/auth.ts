/**
 * Authentication: every request carries `req.principal`. Routes marked `config: { public: true }`
 * (health, readiness, the OpenAPI document, the Upstash routes, which call `authenticateRequest`
 * themselves to answer in their own shape), the /docs pages and CORS preflights need no token.
 *
 * One choke point, `authenticateRequest`, for every route: it refuses an address that failed too
 * often (429, see auth-failures.ts) before looking at its token, and counts each 401.
 */
import type { FastifyContextConfig, FastifyRequest, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { Auth, authorize, OPEN_ACCESS, queryToken, type Principal, type Right } from '../auth.js'
import { GatewayError } from '../errors.js'
import { AuthFailures } from './auth-failures.js'

declare module 'fastify' {
  interface FastifyRequest { principal: Principal }
  interface FastifyContextConfig { public?: boolean }
  interface FastifyInstance {
    auth: Auth
    authFailures: AuthFailures
    /**
     * The principal of a request (open mode: read and write for anyone). Throws 429 while the
     * client's address is over AUTH_FAILURES_MAX, 401 (counted) for a missing or unknown token.
     * `allowQueryToken`: without an Authorization header, `?_token=` may carry the token.
     */
    authenticateRequest: (req: FastifyRequest, allowQueryToken: boolean) => Principal
    /** An onRequest hook: 403 unless the principal has `right` (open mode: no check, see the README). */
    requireRight: (right: Right) => onRequestHookHandler
    /**
     * Sets `req.principal` of a request to a route that needs a token (throws 401/429 as
     * authenticateRequest does). Called by the app's one per-request hook (src/request-hook.ts)
     * with the route's config.
     */
    authenticateRoute: (req: FastifyRequest, route: FastifyContextConfig) => void
  }
}

export interface AuthPluginOptions {
  auth: Auth
  /** AUTH_FAILURES_MAX (0: unlimited) and AUTH_FAILURES_WINDOW_MS. */
  failures: { max: number; windowMs: number }
  /** Called for each request refused because its address failed too often. */
  onBlocked?: () => void
  /**
   * false: the caller's own per-request hook calls `authenticateRoute` (the gateway:
   * src/request-hook.ts). Default: this plugin adds an onRequest hook that does.
   */
  ownHook?: boolean
}

export default fp<AuthPluginOptions>(async (app, { auth, failures: limits, onBlocked, ownHook }) => {
  const failures = new AuthFailures(limits.max, limits.windowMs)
  app.decorate('auth', auth)
  app.decorate('authFailures', failures)
  app.decorateRequest('principal', null as unknown as Principal)
  if (auth.open) app.log.warn('no AUTH_TOKENS configured: the gateway is open to anyone who can reach it')

  function authenticateRequest (req: FastifyRequest, allowQueryToken: boolean): Principal {
    if (auth.open) return OPEN_ACCESS
    // req.ip is only read once someone failed (behind TRUST_PROXY it parses X-Forwarded-For).
    const wait = failures.size === 0 ? 0 : failures.retryAfter(req.ip)
    if (wait > 0) {
      onBlocked?.()
      throw new GatewayError('GW_ERR_RATE_LIMITED', `too many failed authentications from this address; retry in ${wait} s`, { retryAfter: wait })
    }
    const header = req.headers.authorization
    try {
      if (allowQueryToken && header === undefined) {
        const token = queryToken(req.url)
        if (token !== null) return auth.lookup(token)
      }
      return auth.authenticate(header)
    } catch (err) {
      failures.record(req.ip)
      throw err
    }
  }
  app.decorate('authenticateRequest', authenticateRequest)

  const pass: onRequestHookHandler = (_req, _reply, done) => { done() }
  app.decorate('requireRight', (right: Right): onRequestHookHandler => auth.open
    ? pass
    : (req, _reply, done) => {
        try {
          authorize(req.principal, right)
        } catch (err) {
          done(err as Error)
          return
        }
        done()
      })

  const authenticateRoute = (req: FastifyRequest, route: FastifyContextConfig): void => {
    if (req.method === 'OPTIONS' || route.public === true || req.url.startsWith('/docs')) return
    req.principal = authenticateRequest(req, false)
  }
  app.decorate('authenticateRoute', authenticateRoute)
  if (ownHook === false) return
  // A callback hook, not an async one: no promise per request.
  app.addHook('onRequest', (req, _reply, done) => {
    try {
      authenticateRoute(req, req.routeOptions.config)
    } catch (err) {
      done(err as Error)
      return
    }
    done()
  })
}, { name: 'gateway-auth' })
