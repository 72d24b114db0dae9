/** GET /metrics: Prometheus text format (needs a token with the ops right `o` when tokens are configured). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorRef, rateLimitedRef, unauthorizedRef } from '../src/schemas.js'

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/metrics', {
    config: { rateLimit: false },
    onRequest: app.requireRight('ops'),
    schema: {
      operationId: 'getMetrics',
      tags: ['operations'],
      description: 'Prometheus text exposition format, for a scraper. Not rate limited; needs the ops right (`o`) when tokens are configured (a failing address still gets 429 after AUTH_FAILURES_MAX 401s).',
      summary: 'Prometheus metrics: requests, latency, Redis calls per node, breakers, failovers, replica lag, rate-limit rejections',
      response: {
        200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } },
        401: unauthorizedRef(),
        403: errorRef('The token lacks the ops right (`o`)'),
        429: rateLimitedRef(),
        500: errorRef('Internal error')
      }
    }
  }, async (_req, reply) => {
    return await reply.type(app.metrics.registry.contentType).send(await app.metrics.registry.metrics())
  })
}

export default routes
