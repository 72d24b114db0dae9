/**
 * No cross-site writes, in any mode (open or with tokens): a request that may change data and that
 * a browser sent from a page on an origin not in CORS_ORIGINS is refused 403 GW_ERR_FORBIDDEN
 * before authentication (in the Upstash shape on the Upstash routes: their error handler answers).
 *
 * CORS alone does not stop these: `<img src="http://gw/set/k/1">`, a `<form method=post>` or a
 * no-cors `fetch` with a text/plain body are sent without a preflight; the browser only hides the
 * answer, after the write is done.
 *
 * What may change data: every method but GET, HEAD and OPTIONS, and any GET of the Upstash path
 * form (`GET /set/k/1` writes). Who sent it: the browser says, in `Sec-Fetch-Site` (every current
 * browser) and `Origin` (on every non-GET request, and on CORS GETs). curl and server-side clients
 * send neither and are not affected.
 */
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The refusal of a request a page on a foreign origin sent that may change data, else undefined;
     * null when every origin is allowed. Called by the app's one per-request hook (src/request-hook.ts),
     * before authentication.
     */
    crossSiteRefusal: ((req: FastifyRequest) => GatewayError | undefined) | null
  }
}
import { GatewayError } from '../errors.js'

/** The route of the Upstash path form (`GET /<command>/<args>...`, routes/upstash.ts): a GET there may write. */
export const COMMAND_PATH_ROUTE = '/*'

/** The origins of CORS_ORIGINS, normalised for comparison with an `Origin` header ('*': every origin). */
export function allowedOrigins (origins: string[]): ReadonlySet<string> | '*' {
  return origins.includes('*') ? '*' : new Set(origins.map(o => o.trim().replace(/\/+$/, '').toLowerCase()))
}

/**
 * True when the request headers say a browser sent it from a page on another origin that is not
 * allowed:
 *  - `Sec-Fetch-Site: same-origin` or `none` (the user typed the URL): our own page, or the user;
 *  - `cross-site` or `same-site` (another port or subdomain is another origin): allowed only with an
 *    `Origin` in CORS_ORIGINS (an `<img>` or a navigation sends no Origin at all: refused);
 *  - no `Sec-Fetch-Site` (an older browser, or not a browser): refused when an `Origin` is sent that is
 *    neither allowed nor the gateway's own host.
 */
export function isForeignBrowserRequest (site: string | undefined, origin: string | undefined, host: string | undefined, allowed: ReadonlySet<string> | '*'): boolean {
  if (allowed === '*') return false
  if (site === 'same-origin' || site === 'none') return false
  const allowedOrigin = origin !== undefined && allowed.has(origin.toLowerCase())
  if (site === 'cross-site' || site === 'same-site') return !allowedOrigin
  if (origin === undefined || allowedOrigin) return false
  // The gateway's own pages (an older browser sends Origin but no Sec-Fetch-Site): compare hosts only,
  // a TLS-terminating proxy makes the scheme we see differ from the browser's.
  const sep = origin.indexOf('://')
  return host === undefined || sep < 0 || origin.slice(sep + 3).toLowerCase() !== host.toLowerCase()
}

/** True for a request that may change data (see the module comment). */
export function mayWrite (req: FastifyRequest): boolean {
  const m = req.method
  if (m !== 'GET' && m !== 'HEAD' && m !== 'OPTIONS') return true
  return m === 'GET' && req.routeOptions.url === COMMAND_PATH_ROUTE
}

/**
 * `ownHook: false`: only decorate `crossSiteRefusal`, the caller's per-request hook calls it (the
 * gateway: src/request-hook.ts). Default: this plugin adds an onRequest hook that does.
 */
export default fp<{ origins: string[]; ownHook?: boolean }>(async (app, { origins, ownHook }) => {
  const allowed = allowedOrigins(origins)
  if (allowed === '*') {
    app.log.warn('CORS_ORIGINS=*: pages on any origin may write through visitors\' browsers')
    app.decorate('crossSiteRefusal', null)
    return
  }
  // Run before authentication (a page must not make its visitors' addresses spend their
  // failed-authentication budget). Clients that are not browsers on another origin cost two header
  // lookups; only those are asked what the route is (req.routeOptions builds an object).
  app.decorate('crossSiteRefusal', (req: FastifyRequest): GatewayError | undefined => {
    const h = req.headers
    const site = h['sec-fetch-site']
    if (site === undefined ? h.origin === undefined : site === 'same-origin' || site === 'none') return undefined
    if (!isForeignBrowserRequest(site, h.origin, req.host, allowed) || !mayWrite(req)) return undefined
    return new GatewayError('GW_ERR_FORBIDDEN', 'cross-site request refused: a page on an origin not in CORS_ORIGINS may not change data')
  })
  if (ownHook === false) return
  const refusal = app.crossSiteRefusal!
  app.addHook('onRequest', (req, _reply, done) => { done(refusal(req)) })
}, { name: 'gateway-cross-site' })
