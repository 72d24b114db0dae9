/**
 * Per-shard metrics in Cluster mode, labelled `shard` (the shard ids of /topology: as many as the
 * cluster has shards, so the cardinality stays bounded). Read from the topology when scraped.
 */
import { Counter, Gauge, type Registry } from 'prom-client'
import type { TopologySnapshot } from '../topology-types.js'
import type { ClusterTopology } from './topology.js'

/** Registers the per-shard series on `registry`. */
export function clusterMetrics (registry: Registry, cluster: ClusterTopology): void {
  const registers = [registry]
  const perShard = (name: string, help: string, read: (s: TopologySnapshot, slots: number) => number): void => {
    new Gauge({
      name, help, labelNames: ['shard'], registers,
      collect () {
        this.reset()
        for (const shard of cluster.shards) this.set({ shard: shard.id }, read(shard.snapshot, shard.slots.reduce((n, [a, b]) => n + b - a + 1, 0)))
      }
    })
  }
  perShard('skv_shard_master_confirmed', '1 when the shard\'s master is confirmed by the cluster and its own role', s => s.masterConfirmed ? 1 : 0)
  perShard('skv_shard_wait_replicas', 'WAIT count of a replicated write on the shard (replicas pinned for it)', s => s.requiredReplicas)
  perShard('skv_shard_attached_replicas', 'Replicas attached to the shard\'s master', s => s.attachedReplicas)
  perShard('skv_shard_slots', 'Hash slots the shard serves', (_s, slots) => slots)
  const failovers = new Counter({ name: 'skv_shard_failovers_total', help: 'Master changes seen per shard', labelNames: ['shard'], registers })
  cluster.on('shard-failover', (id: string) => failovers.inc({ shard: id }))
}
