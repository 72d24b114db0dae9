/**
 * What the operations page shows at one moment: the /topology view (src/topology-view.ts) plus
 * what only the page needs (what each sentinel names, the WAIT count writes need now, reads each
 * replica served in the last minute, which worker answers) and the last second of traffic. In
 * Cluster mode, the shards as /topology shows them (src/cluster/view.ts).
 */
import cluster from 'node:cluster'
import type { ClusterTopology } from '../cluster/topology.js'
import { shardsView } from '../cluster/view.js'
import { nodeKey } from '../redis/connections.js'
import type { ShardsView } from '../schemas.js'
import { topologyView, type TopologyView, type ViewSources } from '../topology-view.js'
import type { TrafficPoint } from './traffic.js'

/** Seconds over which "reads served" per replica is counted. */
export const READS_WINDOW_S = 60

export interface SentinelView {
  host: string
  port: number
  reachable: boolean
  /** The master it named in its last answer (`host:port`) and that answer's config epoch. */
  names: { master: string; epoch: number } | null
  lastError?: string
}

export interface PageSnapshot {
  at: string
  /** The gateway process this page sees (WORKERS > 1: one of `of`; each has its own view). */
  worker: { id: number | null; pid: number; of: number }
  topology: TopologyView
  /** Cluster mode: the shards (slot ranges, master, replicas, WAIT count, last failover); null in Sentinel mode. */
  shards: ShardsView | null
  sentinels: SentinelView[]
  /** Replicas a write needs now with WRITE_DURABILITY (its WAIT count), and how many are attached. */
  writes: { durability: string; waitCount: number; attached: number }
  /** Reads each node (`host:port`) served in the last READS_WINDOW_S seconds. */
  readsLastMinute: Record<string, number>
  /** The last second of traffic (null until two samples were taken). */
  traffic: TrafficPoint | null
  /** The last timeline event recorded (the page asks for nothing: events come on the stream). */
  timelineSeq: number
}

/** What a snapshot is built from: the /topology view's sources, and the shards in Cluster mode. */
export interface SnapshotSources extends ViewSources {
  cluster?: ClusterTopology | undefined
}

/** Builds one snapshot. */
export function pageSnapshot (sources: SnapshotSources, reads: Map<string, number>, traffic: TrafficPoint | null, timelineSeq: number): PageSnapshot {
  const { topology, gatewayConfig: config } = sources
  const view = topologyView(sources)
  const shards = sources.cluster === undefined ? null : shardsView(sources.cluster, sources.breakers, sources.router)
  const masters = shards === null ? [view.master] : shards.map(sh => sh.master)
  const nodes = [...masters.flatMap(m => m === null ? [] : [nodeKey(m)]), ...view.replicas.map(r => nodeKey(r))]
  return {
    at: new Date().toISOString(),
    worker: { id: cluster.isWorker ? cluster.worker?.id ?? null : null, pid: process.pid, of: config.workers },
    topology: view,
    shards,
    sentinels: topology.sentinelStatuses.map(st => ({
      host: st.host,
      port: st.port,
      reachable: st.reachable,
      names: st.names ?? null,
      ...(st.lastError === undefined ? {} : { lastError: st.lastError })
    })),
    writes: { durability: config.durability, waitCount: topology.waitCount(config.durability), attached: topology.snapshot.attachedReplicas },
    readsLastMinute: Object.fromEntries(nodes.map(k => [k, reads.get(k) ?? 0])),
    traffic,
    timelineSeq
  }
}
