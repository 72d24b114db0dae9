/**
 * The `shards` part of /topology in Cluster mode (ShardsSchema in src/schemas.ts): per shard its
 * slot ranges, master, replicas (health, lag, read latency, breakers applied), the WAIT count
 * pinned for it and its last failover. Absent in Sentinel mode.
 */
import type { Breakers } from '../breakers.js'
import type { ReadRouter } from '../routing.js'
import type { ShardsView } from '../schemas.js'
import { rangesText } from './nodes.js'
import type { ClusterTopology } from './topology.js'

const roundMs = (ms: number | null): number | null => ms === null ? null : Math.round(ms * 100) / 100

/** The shards as /topology shows them. */
export function shardsView (cluster: ClusterTopology, breakers: Breakers, router: ReadRouter): ShardsView {
  return cluster.shards.map(shard => {
    const s = shard.snapshot
    return {
      id: shard.id,
      slots: rangesText(shard.slots),
      master: s.master === null ? null : { host: s.master.host, port: s.master.port, confirmed: s.masterConfirmed },
      requiredReplicas: s.requiredReplicas,
      allReplicas: s.allReplicas,
      failoverInProgress: s.failoverInProgress,
      replicas: s.replicas.map(({ key, host, port, healthy, reason, attached, lagBytes, lagSeconds, link }) => {
        const open = breakers.isOpen(key)
        const why = reason ?? (open ? 'circuit breaker open' : undefined)
        return { host, port, healthy: healthy && !open, ...(why === undefined ? {} : { reason: why }), attached, lagBytes, lagSeconds, ...(link === undefined ? {} : { link }), latencyMs: roundMs(router.latencyOf(key)) }
      }),
      lastFailover: s.lastFailover
    }
  })
}
