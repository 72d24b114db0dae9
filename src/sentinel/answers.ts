/**
 * Pure logic over what the sentinels answered: which master to believe, which replicas a write
 * must reach, which sentinels agree. No I/O here, so it is unit-tested with plain data.
 */
import type { NodeAddress } from '../redis/connections.js'
import { nodeKey } from '../redis/connections.js'

export interface ReplicaReport extends NodeAddress {
  flags: string[]
  /** `master-link-status` as this sentinel last saw it. */
  linkOk: boolean
  /** `role-reported` by the replica itself as this sentinel last saw it. */
  roleReported: string
}

/** What one sentinel said about the master set. */
export interface SentinelAnswer {
  sentinel: string
  master: NodeAddress
  epoch: number
  masterFlags: string[]
  replicas: ReplicaReport[]
}

export interface ChosenMaster {
  master: NodeAddress
  epoch: number
  /** The answers that name this master with this epoch. */
  agreeing: SentinelAnswer[]
}

const DOWN_FLAGS = new Set(['s_down', 'o_down', 'disconnected'])

/**
 * The master named with the highest config epoch; among answers with that epoch, the address
 * named most often. A sentinel that lags behind a failover (lower epoch) is outvoted by epoch,
 * not by count.
 */
export function chooseMaster (answers: SentinelAnswer[]): ChosenMaster | null {
  const valid = answers.filter(a => a.master.port > 0 && !a.masterFlags.includes('o_down'))
  const pool = valid.length > 0 ? valid : answers
  if (pool.length === 0) return null
  const top = Math.max(...pool.map(a => a.epoch))
  const byAddr = new Map<string, SentinelAnswer[]>()
  for (const a of pool.filter(a => a.epoch === top)) {
    const k = nodeKey(a.master)
    byAddr.set(k, [...(byAddr.get(k) ?? []), a])
  }
  const [best] = [...byAddr.values()].sort((x, y) => y.length - x.length)
  if (best === undefined || best[0] === undefined) return null
  return { master: best[0].master, epoch: top, agreeing: best }
}

export interface ReplicaVerdict extends NodeAddress {
  key: string
  /** Flagged s_down/o_down/disconnected by a majority of the sentinels that list it. */
  downByMajority: boolean
  /** Link to the master reported up and role reported 'slave' (by the agreeing sentinels). */
  linkOk: boolean
  flags: string[]
}

/**
 * The replicas of the chosen master, as the agreeing sentinels list them. A replica is "down"
 * only when a majority of those listing it say so: one sentinel's opinion never lowers the
 * number of replicas a write must reach.
 */
export function replicaVerdicts (chosen: ChosenMaster): ReplicaVerdict[] {
  const seen = new Map<string, ReplicaReport[]>()
  for (const a of chosen.agreeing) {
    for (const r of a.replicas) {
      const k = nodeKey(r)
      seen.set(k, [...(seen.get(k) ?? []), r])
    }
  }
  return [...seen.entries()].map(([key, reports]) => {
    const down = reports.filter(r => r.flags.some(f => DOWN_FLAGS.has(f))).length
    const first = reports[0]!
    return {
      key,
      host: first.host,
      port: first.port,
      downByMajority: down * 2 > reports.length,
      linkOk: reports.some(r => r.linkOk && r.roleReported === 'slave'),
      flags: first.flags
    }
  }).sort((a, b) => a.key.localeCompare(b.key))
}

/** Parses a sentinel event's payload and says whether it concerns `masterName`. */
export function eventConcerns (channel: string, message: string, masterName: string): boolean {
  const parts = message.split(' ')
  if (channel === '+switch-master') return parts[0] === masterName
  if (parts[0] === 'master') return parts[1] === masterName
  const at = parts.indexOf('@')
  return at >= 0 && parts[at + 1] === masterName
}
