/** /topology, /healthz, /readyz. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorRef, HealthSchema, rateLimitedRef, unauthorizedRef, TopologySchema } from '../src/schemas.js'
import { topologyView } from '../src/topology-view.js'
import { shardsView } from '../src/cluster/view.js'

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const { topology } = app

  app.get('/topology', {
    // Node addresses are for operators: the ops right (`o`) when tokens are configured.
    onRequest: app.requireRight('ops'),
    schema: {
      operationId: 'getTopology',
      tags: ['operations'],
      summary: 'Current master, replicas (health, lag), sentinels and circuit breakers',
      description: 'The gateway\'s own view of the deployment, for operators: the master the sentinels name (and whether its ROLE agrees), each replica\'s health, lag and latency, the sentinels, the circuit breakers, the last failover and the near-cache. Needs the ops right (`o`) when tokens are configured.',
      response: {
        200: { description: 'The gateway\'s current view of the deployment', content: { 'application/json': { schema: TopologySchema } } },
        401: unauthorizedRef('Tokens are configured and none (or an unknown one) was given'),
        403: errorRef('The token lacks the ops right (`o`)'),
        429: rateLimitedRef(),
        500: errorRef('Internal error')
      }
    }
  }, async () => {
    const view = topologyView(app)
    // Cluster mode: the shards too (src/cluster/view.ts).
    return app.cluster === undefined ? view : { ...view, shards: shardsView(app.cluster, app.breakers, app.router) }
  })

  // The probes are never shed by under-pressure (a handler that does not reply lets the request on):
  // /healthz stays 200 under load, /readyz answers its own documented 503 (the shed answer's Error
  // body did not fit /readyz's 503 schema: it came out as a 500).
  const open = { public: true, rateLimit: false as const, pressureHandler: (): void => {} }
  app.get('/healthz', {
    config: open,
    schema: { operationId: 'getHealth', tags: ['operations'], summary: 'The process is up', description: 'Liveness: answers 200 while the process serves HTTP, whatever Redis does. No token needed.', security: [], response: { 200: { description: 'The process is up', content: { 'application/json': { schema: HealthSchema } } } } }
  }, async () => ({ status: 'ok' }))

  app.get('/readyz', {
    config: open,
    schema: {
      operationId: 'getReadiness',
      tags: ['operations'],
      summary: 'Ready: a master is known and answers PING',
      description: 'Readiness: 200 when writes can be served now, 503 (with the reason) otherwise. No token needed.',
      security: [],
      response: {
        200: { description: 'Ready to serve', content: { 'application/json': { schema: HealthSchema } } },
        503: { description: 'Not ready: writes cannot be served now (no master confirmed by the sentinels and its own ROLE, a failover holding writes, its breaker open, no ready /kv connection to it, or no PING answer), or the gateway is overloaded. `reason` says which', content: { 'application/json': { schema: HealthSchema } } }
      }
    }
  }, async (_req, reply) => {
    if (app.hasDecorator('isUnderPressure') && app.isUnderPressure()) return await reply.code(503).send({ status: 'not ready', reason: 'overloaded (event loop lagging)' })
    // Ready means writes can be served now (src/topology.ts).
    const reason = await topology.notWritableReason()
    return reason === null ? { status: 'ready' } : await reply.code(503).send({ status: 'not ready', reason })
  })
}

export default routes
