/**
 * The snapshot one Sentinel-mode refresh (src/topology.ts) assembles from what it read: the
 * sentinels' verdicts on the master's replicas, the master's INFO, and what the topology decided
 * from them (the WAIT count, whether a failover holds writes). No I/O and no state of its own.
 */
import { nodeKey, type NodeAddress } from '../redis/connections.js'
import type { ReplicationInfo } from '../redis/parse.js'
import type { ReplicaLinks } from '../replica-links.js'
import { replicaState } from '../replica-state.js'
import type { ReplicaState, TopologySnapshot } from '../topology-types.js'
import type { ChosenMaster, ReplicaVerdict } from './answers.js'

/** What one refresh saw of the master's replicas. */
export interface SeenReplicas {
  /** The sentinels' verdicts on the replicas they list (empty: no sentinel answered). */
  verdicts: ReplicaVerdict[]
  /** The replicas in the master's INFO, by key (none when it did not answer). */
  attached: Map<string, ReplicationInfo['replicas'][number]>
  /** The replicas the sentinels list. */
  listed: Set<string>
  /** The replicas a majority of the sentinels flag down. */
  down: Set<string>
}

/** What the sentinels' `verdicts` and the master's `info` (null: it did not answer) say of its replicas. */
export function seenReplicas (verdicts: ReplicaVerdict[], info: ReplicationInfo | null): SeenReplicas {
  return {
    verdicts,
    attached: new Map((info?.replicas ?? []).map(r => [nodeKey(r), r])),
    listed: new Set(verdicts.map(v => v.key)),
    down: new Set(verdicts.filter(v => v.downByMajority).map(v => v.key))
  }
}

/** What one refresh read, and what the topology decided from it. */
export interface RefreshOutcome {
  prev: TopologySnapshot
  /** The master followed: the one the sentinels named, or (none answered) the last one they named. */
  master: NodeAddress
  /** The sentinels' choice (null: no sentinel answered). */
  chosen: ChosenMaster | null
  /** The master's INFO replication (null: it did not answer). */
  info: ReplicationInfo | null
  seen: SeenReplicas
  /** The WAIT count of a `replicated` write (src/sentinel/pinned-replicas.ts). */
  requiredReplicas: number
  /**
   * Replication offset of the last write acknowledged on this master (same master, same history)
   * before its INFO was read; null when there is none.
   */
  ackedOffset: number | null
  failoverInProgress: boolean
}

/** The snapshot after refresh `r`: each replica's state (`links`: their own accounts) and the counts a write uses. */
export function nextSnapshot (r: RefreshOutcome, links: ReplicaLinks, maxLagBytes: number): TopologySnapshot {
  const { prev, master, chosen, info, seen: { verdicts, attached, listed, down } } = r
  const masterKey = nodeKey(master)
  const replicas = verdicts.map(v => replicaState(v, attached.get(v.key), info, links, maxLagBytes, masterKey))
  for (const [k, a] of attached) {
    if (!listed.has(k)) replicas.push(replicaState({ key: k, host: a.host, port: a.port, downByMajority: false, linkOk: true, flags: [] }, a, info, links, maxLagBytes, masterKey))
  }
  const readable = catchingUp(replicas, r.prev, r.ackedOffset)
  return {
    ...prev,
    master,
    masterConfirmed: info?.role === 'master',
    configEpoch: chosen?.epoch ?? prev.configEpoch,
    masterReplOffset: info?.masterReplOffset ?? prev.masterReplOffset,
    replicas: readable,
    requiredReplicas: r.requiredReplicas,
    // Strict: a node leaves this set only when the sentinels stop listing it, never because it is down.
    allReplicas: chosen === null ? prev.allReplicas : new Set([...listed, ...attached.keys()].filter(k => k !== masterKey)).size,
    // Online by the master's INFO, and not flagged down by the sentinels: a replica killed a moment
    // ago may still look attached to the master, and would never acknowledge.
    attachedReplicas: info === null ? prev.attachedReplicas : [...attached].filter(([k, a]) => a.state === 'online' && !down.has(k)).length,
    failoverInProgress: r.failoverInProgress,
    refreshedAt: new Date().toISOString()
  }
}

/**
 * A replica that becomes readable must first hold every write acknowledged before the master's INFO
 * was read (`ackedOffset`): writes did not wait for a replica they did not count (right after a
 * failover the WAIT count can be lower than the replicas readable a moment later), and a default read
 * there would miss an acknowledged write for a few milliseconds. Replicas readable at the last refresh
 * were counted by those writes, so they hold them already.
 */
export function catchingUp (replicas: ReplicaState[], prev: TopologySnapshot, ackedOffset: number | null): ReplicaState[] {
  if (ackedOffset === null) return replicas
  const was = new Set(prev.replicas.filter(x => x.healthy).map(x => x.key))
  return replicas.map(x => x.healthy && !was.has(x.key) && x.offset !== null && x.offset < ackedOffset
    ? { ...x, healthy: false, reason: `catching up: offset ${x.offset} behind the last acknowledged write (${ackedOffset})` }
    : x)
}
