/** /topology, /healthz, /readyz. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorRef, HealthSchema, unauthorizedRef, TopologySchema } from '../src/schemas.js'
import type { AckedPosition } from '../src/sentinel/history.js'

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const { topology, breakers, router, near, gatewayConfig: config } = app
  const cacheOff = { enabled: false, activeReplicas: [], entries: 0, bytes: 0, maxBytes: 0, maxValueBytes: 0, hits: 0, misses: 0, evictions: 0, invalidations: 0, flushes: {} }

  app.get('/topology', {
    // Node addresses are for operators: the ops right (`o`) when tokens are configured.
    onRequest: app.requireRight('ops'),
    schema: {
      tags: ['operations'],
      summary: 'Current master, replicas (health, lag), sentinels and circuit breakers',
      response: {
        200: { description: 'The gateway\'s current view of the deployment', content: { 'application/json': { schema: TopologySchema } } },
        401: unauthorizedRef('Tokens are configured and none (or an unknown one) was given'),
        403: errorRef('The token lacks the ops right (`o`)'),
        500: errorRef('Internal error')
      }
    }
  }, async () => {
    const s = topology.snapshot
    return {
      masterName: s.masterName,
      master: s.master === null ? null : { host: s.master.host, port: s.master.port, confirmed: s.masterConfirmed, ...deafNote(s.replicas) },
      configEpoch: s.configEpoch,
      requiredReplicas: s.requiredReplicas,
      allReplicas: s.allReplicas,
      failoverInProgress: s.failoverInProgress,
      replicas: s.replicas.map(r => ({
        host: r.host,
        port: r.port,
        healthy: r.healthy && !breakers.isOpen(r.key),
        ...(r.reason !== undefined ? { reason: r.reason } : breakers.isOpen(r.key) ? { reason: 'circuit breaker open' } : {}),
        attached: r.attached,
        lagBytes: r.lagBytes,
        lagSeconds: r.lagSeconds,
        ...(r.link === undefined ? {} : { link: r.link }),
        latencyMs: roundMs(router.latencyOf(r.key))
      })),
      sentinels: topology.sentinelStatuses.map(st => ({ host: st.host, port: st.port, reachable: st.reachable })),
      breakers: breakers.status(),
      lastFailover: s.lastFailover,
      lastAcknowledged: ackedOf(topology.lastAcknowledged),
      readStrategy: config.readStrategy,
      nearCache: near === undefined ? cacheOff : { ...near.cache.stats, activeReplicas: near.tracker.activeReplicas },
      refreshedAt: s.refreshedAt
    }
  })

  const open = { public: true, rateLimit: false as const }
  app.get('/healthz', {
    config: open,
    schema: { tags: ['operations'], summary: 'The process is up', security: [], response: { 200: { description: 'The process is up', content: { 'application/json': { schema: HealthSchema } } } } }
  }, async () => ({ status: 'ok' }))

  app.get('/readyz', {
    config: open,
    schema: {
      tags: ['operations'],
      summary: 'Ready: a master is known and answers PING',
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

const ackedOf = (a: AckedPosition | null): { node: string; replid: string; offset: number } | null => a === null ? null : { node: a.node, replid: a.replid, offset: a.offset }
/** The master answers the gateway but cannot hear these replicas (not "unreachable"). */
const deafNote = (replicas: ReadonlyArray<{ key: string; link?: string }>): { note?: string } => {
  const deaf = replicas.filter(r => r.link !== undefined).map(r => `${r.key} (${r.link!})`)
  return deaf.length === 0 ? {} : { note: `answers the gateway but cannot hear replica ${deaf.join(', ')}` }
}
const roundMs = (ms: number | null): number | null => ms === null ? null : Math.round(ms * 100) / 100

export default routes
