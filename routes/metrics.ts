/** GET /metrics: Prometheus text format (needs a token with the ops right `o` when tokens are configured). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorRef, unauthorizedRef } from '../src/schemas.js'

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/metrics', {
    config: { rateLimit: false },
    onRequest: app.requireRight('ops'),
    schema: {
      tags: ['operations'],
      summary: 'Prometheus metrics: requests, latency, Redis calls per node, breakers, failovers, replica lag, rate-limit rejections',
      response: {
        200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } },
        401: unauthorizedRef(),
        403: errorRef('The token lacks the ops right (`o`)'),
        500: errorRef('Internal error')
      }
    }
  }, async (_req, reply) => {
    return await reply.type(app.metrics.registry.contentType).send(await app.metrics.registry.metrics())
  })
}

export default routes
