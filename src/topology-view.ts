/**
 * The gateway's view of the deployment as /topology answers it (and the operations page shows it):
 * the topology snapshot with breakers, read latencies and the near-cache applied on top.
 * One builder, so the JSON route and the page never tell two different stories.
 */
import type { Breakers } from './breakers.js'
import type { Config } from './config.js'
import type { ReadCache } from './kv.js'
import type { ReadRouter } from './routing.js'
import type { AckedPosition } from './sentinel/history.js'
import type { ReplicaState, Topology } from './topology.js'

/** What the view is built from (the services the app is decorated with). */
export interface ViewSources {
  topology: Topology
  breakers: Breakers
  router: ReadRouter
  near?: ReadCache | undefined
  gatewayConfig: Config
}

const CACHE_OFF = { enabled: false, activeReplicas: [], entries: 0, bytes: 0, maxBytes: 0, maxValueBytes: 0, hits: 0, misses: 0, evictions: 0, invalidations: 0, flushes: {} }

/** The /topology body (TopologySchema in src/schemas.ts). */
export function topologyView ({ topology, breakers, router, near, gatewayConfig: config }: ViewSources) {
  const s = topology.snapshot
  return {
    masterName: s.masterName,
    master: s.master === null ? null : { host: s.master.host, port: s.master.port, confirmed: s.masterConfirmed, ...deafNote(s.replicas) },
    configEpoch: s.configEpoch,
    requiredReplicas: s.requiredReplicas,
    allReplicas: s.allReplicas,
    failoverInProgress: s.failoverInProgress,
    replicas: s.replicas.map(r => replicaView(r, breakers, router)),
    sentinels: topology.sentinelStatuses.map(st => ({ host: st.host, port: st.port, reachable: st.reachable })),
    breakers: breakers.status(),
    lastFailover: s.lastFailover,
    lastAcknowledged: ackedOf(topology.lastAcknowledged),
    readStrategy: config.readStrategy,
    nearCache: near === undefined ? CACHE_OFF : { ...near.cache.stats, activeReplicas: near.tracker.activeReplicas },
    refreshedAt: s.refreshedAt
  }
}

/** One replica as /topology shows it: its breaker applied to `healthy`, its read latency. */
export function replicaView (r: ReplicaState, breakers: Breakers, router: ReadRouter) {
  return {
    host: r.host,
    port: r.port,
    healthy: r.healthy && !breakers.isOpen(r.key),
    ...(r.reason !== undefined ? { reason: r.reason } : breakers.isOpen(r.key) ? { reason: 'circuit breaker open' } : {}),
    attached: r.attached,
    lagBytes: r.lagBytes,
    lagSeconds: r.lagSeconds,
    ...(r.link === undefined ? {} : { link: r.link }),
    latencyMs: roundMs(router.latencyOf(r.key))
  }
}

/** The /topology body's type. */
export type TopologyView = ReturnType<typeof topologyView>

const ackedOf = (a: AckedPosition | null): { node: string; replid: string; offset: number } | null => a === null ? null : { node: a.node, replid: a.replid, offset: a.offset }
/** The master answers the gateway but cannot hear these replicas (not "unreachable"). */
const deafNote = (replicas: ReadonlyArray<{ key: string; link?: string }>): { note?: string } => {
  const deaf = replicas.filter(r => r.link !== undefined).map(r => `${r.key} (${r.link!})`)
  return deaf.length === 0 ? {} : { note: `answers the gateway but cannot hear replica ${deaf.join(', ')}` }
}
const roundMs = (ms: number | null): number | null => ms === null ? null : Math.round(ms * 100) / 100
