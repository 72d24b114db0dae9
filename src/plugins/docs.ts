/** The API description, served from the same schemas that produce openapi.yaml: /openapi.json, /openapi.yaml, /docs. */
import swaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'

/**
 * The CSP of the /docs pages: swagger-ui's own files only, and its API calls to this gateway.
 * No `upgrade-insecure-requests` (@fastify/swagger-ui's default has it): opened over plain HTTP by a
 * host name (a compose or VPC network), it would send every asset to https and leave the page blank.
 */
export const DOCS_CSP = [
  "default-src 'self'",
  "base-uri 'self'",
  "connect-src 'self'",
  "font-src 'self' data:",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "img-src 'self' data:",
  "object-src 'none'",
  "script-src 'self'",
  "script-src-attr 'none'",
  "style-src 'self'"
].join('; ')

export default fp(async (app) => {
  await app.register(async (docs) => {
    docs.addHook('onSend', (req, reply, _payload, done) => {
      // Over plain HTTP by host name (not a potentially trustworthy origin) browsers ignore these
      // two and say so in the console (COOP as an error): send them only over HTTPS.
      if (req.protocol !== 'https') {
        reply.removeHeader('cross-origin-opener-policy')
        reply.removeHeader('origin-agent-cluster')
      }
      done()
    })
    await docs.register(swaggerUi, {
      routePrefix: '/docs',
      staticCSP: DOCS_CSP,
      // BaseLayout: no top bar (its logo is an SVG with an inline <style> the CSP refuses, and its
      // URL box would load other documents); the servers, Authorize and every operation remain.
      uiConfig: { docExpansion: 'list', layout: 'BaseLayout', tryItOutEnabled: false }
    })
  })
  const hidden = { schema: { hide: true }, config: { public: true } }
  app.get('/openapi.json', hidden, async () => app.swagger())
  app.get('/openapi.yaml', hidden, async (_req, reply) => await reply.type('application/yaml').send(app.swagger({ yaml: true })))
}, { name: 'gateway-docs' })
