/** @fastify/helmet for an API: no framing, no sniffing, nothing loaded by our JSON answers. */
import helmet from '@fastify/helmet'
import fp from 'fastify-plugin'

export default fp(async (app) => {
  await app.register(helmet, {
    contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    // Browsers on other (allowed) origins read our answers: CORS decides, not CORP.
    crossOriginResourcePolicy: { policy: 'cross-origin' }
  })
}, { name: 'gateway-security' })
