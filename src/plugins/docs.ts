/** The API description, served from the same schemas that produce openapi.yaml: /openapi.json, /openapi.yaml, /docs. */
import swaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'

export default fp(async (app) => {
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true, uiConfig: { docExpansion: 'list' } })
  const hidden = { schema: { hide: true }, config: { public: true } }
  app.get('/openapi.json', hidden, async () => app.swagger())
  app.get('/openapi.yaml', hidden, async (_req, reply) => await reply.type('application/yaml').send(app.swagger({ yaml: true })))
}, { name: 'gateway-docs' })
