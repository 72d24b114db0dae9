/**
 * Authentication: every request carries `req.principal`. Routes marked `config: { public: true }`
 * (health, readiness, the OpenAPI document), the /docs pages and CORS preflights need no token.
 */
import fp from 'fastify-plugin'
import { Auth, type Principal } from '../auth.js'

declare module 'fastify' {
  interface FastifyRequest { principal: Principal }
  interface FastifyContextConfig { public?: boolean }
  interface FastifyInstance { auth: Auth }
}

export default fp<{ auth: Auth }>(async (app, { auth }) => {
  app.decorate('auth', auth)
  app.decorateRequest('principal', null as unknown as Principal)
  if (auth.open) app.log.warn('no AUTH_TOKENS configured: the gateway is open to anyone who can reach it')
  // A callback hook, not an async one: no promise per request.
  app.addHook('onRequest', (req, _reply, done) => {
    if (req.method === 'OPTIONS' || req.routeOptions.config.public === true || req.url.startsWith('/docs')) { done(); return }
    try {
      req.principal = auth.authenticate(req.headers.authorization)
    } catch (err) {
      done(err as Error)
      return
    }
    done()
  })
}, { name: 'gateway-auth' })
