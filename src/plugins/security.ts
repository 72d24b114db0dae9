/**
 * helmet's headers for an API: no framing, no sniffing, nothing loaded by our JSON answers.
 *
 * The headers do not depend on the request, so helmet runs once, at start, against a response
 * that only records what it does, and each request gets the result as reply headers: the same
 * names and values as @fastify/helmet gave, which re-parsed the CSP and rebuilt every header on
 * each request (about 15% of the CPU of a GET). Routes may still override one (/docs sets its own
 * CSP in @fastify/swagger-ui's onSend hook).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'

export const HELMET_OPTIONS: HelmetOptions = {
  contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  // Browsers on other (allowed) origins read our answers: CORS decides, not CORP.
  crossOriginResourcePolicy: { policy: 'cross-origin' }
}

/** What helmet does to every response: headers it sets (lower-case names) and headers it removes. */
export interface HelmetHeaders { headers: Record<string, string>; removed: string[] }

/** Runs helmet's middleware once against a recording response. */
export function helmetHeaders (options: HelmetOptions): HelmetHeaders {
  const headers: Record<string, string> = {}
  const removed: string[] = []
  const recorder = {
    setHeader (name: string, value: number | string | readonly string[]) {
      if (typeof value !== 'string') throw new Error(`helmet set ${name} to a ${typeof value}: only strings are replayed`)
      headers[name.toLowerCase()] = value
      return this
    },
    removeHeader (name: string) {
      if (name.toLowerCase() in headers) delete headers[name.toLowerCase()]
      else removed.push(name)
    }
  }
  let finished = false
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (err?: unknown) => {
    if (err !== undefined && err !== null) throw err
    finished = true
  })
  // Replaying assumes helmet neither looks at the request nor answers later.
  if (!finished) throw new Error('helmet did not finish synchronously')
  return { headers, removed }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The headers every answer gets, applied by the app's one per-request hook (src/request-hook.ts). */
    securityHeaders: HelmetHeaders
  }
}

/**
 * `applyHeaders: false`: only decorate `securityHeaders`, the caller's own per-request hook applies
 * them (the gateway: src/request-hook.ts). Default: this plugin's own onRequest hook does.
 */
export default fp<{ applyHeaders?: boolean }>(async (app, opts) => {
  const security = helmetHeaders(HELMET_OPTIONS)
  app.decorate('securityHeaders', security)
  if (opts.applyHeaders === false) return
  const { headers, removed } = security
  // Reply headers, not res.setHeader: Fastify hands them to one writeHead with its own, which
  // costs far less than a setHeader per header (names are case-insensitive: Fastify lower-cases them).
  app.addHook('onRequest', (_req, reply, done) => {
    for (const name of removed) reply.raw.removeHeader(name)
    reply.headers(headers)
    done()
  })
}, { name: 'gateway-security' })
