/** The shapes of the gateway's view of the deployment (src/topology.ts keeps it up to date). */
import type { NodeAddress } from './redis/connections.js'
import type { HistoryCheck } from './sentinel/history.js'

export interface ReplicaState extends NodeAddress {
  key: string
  /** May serve reads (breakers are applied on top of this by the router). */
  healthy: boolean
  /** Why not, when not healthy. */
  reason?: string
  /** Attached to the master right now, as the master reports it. */
  attached: boolean
  /** Replication offset bytes behind the master (null when not attached). */
  lagBytes: number | null
  /** Seconds since the replica's last ack to the master, as the master reports it. */
  lagSeconds: number | null
  /** Link trouble that does not stop reads, e.g. `master hears no ack for 5 s` (an asymmetric cut). */
  link?: string
  offset: number | null
  sentinelFlags: string[]
}

/** `detectedBy`: 'sentinels' (they name another master) or 'replication-id' (the master's history changed in place). */
export interface FailoverRecord extends HistoryCheck { at: string; from: NodeAddress | null; to: NodeAddress; detectedBy: string }

export interface TopologySnapshot {
  masterName: string
  master: NodeAddress | null
  /** The master's own INFO says role:master (checked on every refresh). */
  masterConfirmed: boolean
  configEpoch: number
  masterReplOffset: number
  replicas: ReplicaState[]
  /**
   * Replicas a `replicated` write must reach (WAIT count): every replica the sentinels list and
   * do not flag down (attached or not: a listed node may be promoted), and every one seen attached
   * since, until the sentinels flag it down or stop listing it.
   */
  requiredReplicas: number
  /** Replicas a `durability=all` write must reach: every data node the sentinels list (and any attached), down or not. */
  allReplicas: number
  /** Replicas attached to the master right now (its INFO: state online): a WAIT can count no more. */
  attachedReplicas: number
  failoverInProgress: boolean
  lastFailover: FailoverRecord | null
  refreshedAt: string | null
}

/** The snapshot before the first refresh: no master known yet. */
export function emptySnapshot (masterName: string): TopologySnapshot {
  return {
    masterName,
    master: null,
    masterConfirmed: false,
    configEpoch: 0,
    masterReplOffset: 0,
    replicas: [],
    requiredReplicas: 0,
    allReplicas: 0,
    attachedReplicas: 0,
    failoverInProgress: false,
    lastFailover: null,
    refreshedAt: null
  }
}
