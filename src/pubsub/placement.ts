/**
 * Where the pub/sub hub (hub.ts) may hold its one subscriber connection, read from the topology of
 * either mode:
 *
 * - Sentinel mode: PUBLISH on the master reaches the replicas through replication, so a replica
 *   attached to the master receives every message; a failover (another master) is a gap.
 * - Cluster mode: PUBLISH on any node is broadcast over the cluster bus to every node, replicas
 *   included and whatever their replication link, so a subscriber on any node of any shard
 *   receives every channel; a node the cluster flags failing (`fail`, `fail?`) is cut off from
 *   the bus. A shard failover loses nothing for a subscriber on another node: no gap.
 *
 * In both modes a replica the read router would use (healthy, breaker closed) is preferred, a
 * master is the fallback.
 */
import { nodeKey, type NodeAddress } from '../redis/connections.js'
import type { ReplicaState, TopologySnapshot } from '../topology-types.js'

/** The nodes the hub chooses among now. */
export interface HubNodes {
  /** Replicas to move to (chosen at random, so that gateway processes spread out). */
  candidates: readonly ReplicaState[]
  /** Where to go when no candidate is left: the master (Sentinel), every shard's master (Cluster). */
  masters: readonly NodeAddress[]
  /** Nodes ("host:port") whose subscribers receive every message published now: stay there. */
  receiving: ReadonlyMap<string, NodeAddress>
  /** The node every message comes from (a change is a gap); null when messages cross a bus (Cluster). */
  source: string | null
  /** A live connection holds still during a failover (the promoted node changes role under it). */
  failoverInProgress: boolean
}

/** The read router's filter (ReadRouter.candidates): healthy, breaker closed. */
export type Candidates = (replicas: readonly ReplicaState[]) => ReplicaState[]

const SENTINEL_DOWN = new Set(['s_down', 'o_down', 'disconnected'])

/**
 * Sentinel mode: a replica that gets the master's messages: healthy, or attached and only lagging
 * (it delivers late, but moving away would lose messages) and not flagged down by the sentinels.
 */
const receivesReplicated = (r: ReplicaState): boolean => r.healthy || (r.attached && !r.sentinelFlags.some(f => SENTINEL_DOWN.has(f)))

/** Cluster mode: a replica on the cluster bus (not flagged `fail`/`fail?`) that the gateway sees alive. */
const receivesFromBus = (r: ReplicaState): boolean => (r.healthy || r.attached) && !r.sentinelFlags.some(f => f === 'fail' || f === 'fail?')

/** Sentinel mode: the replicas of the one master, the master as fallback and as the source. */
export function sentinelNodes (s: TopologySnapshot, candidates: Candidates): HubNodes {
  const receiving = new Map<string, NodeAddress>()
  for (const r of s.replicas) if (receivesReplicated(r)) receiving.set(r.key, r)
  if (s.master !== null) receiving.set(nodeKey(s.master), s.master)
  return {
    candidates: candidates(s.replicas),
    masters: s.master === null ? [] : [s.master],
    receiving,
    source: s.master === null ? null : nodeKey(s.master),
    failoverInProgress: s.failoverInProgress
  }
}

/** Cluster mode: every shard's replicas, every shard's master as fallback; no single source. */
export function clusterNodes (shards: ReadonlyArray<{ readonly snapshot: TopologySnapshot }>, candidates: Candidates): HubNodes {
  const receiving = new Map<string, NodeAddress>()
  const masters: NodeAddress[] = []
  const replicas: ReplicaState[] = []
  for (const { snapshot: s } of shards) {
    // A master the cluster suspects or flags failing is about to be replaced (or cut off the bus).
    if (s.master !== null && !s.failoverInProgress) {
      masters.push(s.master)
      receiving.set(nodeKey(s.master), s.master)
    }
    for (const r of s.replicas) {
      replicas.push(r)
      if (receivesFromBus(r)) receiving.set(r.key, r)
    }
  }
  return {
    candidates: candidates(replicas).filter(r => receiving.has(r.key)),
    masters,
    receiving,
    source: null,
    failoverInProgress: false
  }
}

/** Where the sharded subscriptions (SSUBSCRIBE) of a hash slot are held now; `owner` names what serves the slot (its change is a slot move). */
export interface ShardTarget { node: NodeAddress; owner: string }

/** Sentinel mode: the master for every slot; none while a failover is in progress (the subscriptions hold still). */
export function sentinelShardTarget (topology: { readonly snapshot: TopologySnapshot }): (slot: number) => ShardTarget | null {
  return () => {
    const s = topology.snapshot
    return s.master === null || s.failoverInProgress ? null : { node: s.master, owner: 'master' }
  }
}

/**
 * Cluster mode: the master of the shard serving the slot (SPUBLISH reaches the nodes of that shard
 * only); none while the shard fails over or no shard serves the slot.
 */
export function clusterShardTarget (cluster: { shardForSlot (slot: number): { readonly id: string; readonly snapshot: TopologySnapshot } }): (slot: number) => ShardTarget | null {
  return slot => {
    let shard
    try { shard = cluster.shardForSlot(slot) } catch { return null }
    const s = shard.snapshot
    return s.master === null || s.failoverInProgress ? null : { node: s.master, owner: shard.id }
  }
}
