/**
 * What a topology (Sentinel or Cluster shard) asks of the master it follows: its own INFO
 * replication, and whether its replication history holds the last acknowledged write (a stale
 * promotion otherwise: issue 11, requirement 3).
 */
import type { Breakers } from './breakers.js'
import type { Config } from './config.js'
import { nodeKey, type Connections, type NodeAddress } from './redis/connections.js'
import { withTimeout } from './redis/faults.js'
import { parseReplicationInfo, type ReplicationInfo } from './redis/parse.js'
import { checkOf, UNCHECKED, type AckHistory, type HistoryVerdict } from './sentinel/history.js'
import type { FailoverRecord, TopologySnapshot } from './topology-types.js'

/** INFO replication of `master` through its breaker; null when it does not answer. */
export async function replicationOf (master: NodeAddress, connections: Connections, breakers: Breakers,
  config: Pick<Config, 'connectTimeoutMs' | 'commandTimeoutMs'>): Promise<ReplicationInfo | null> {
  try {
    const pool = connections.get(master)
    const node = nodeKey(master)
    const ask = async (): Promise<string> => await (await pool.control(config.connectTimeoutMs)).info('replication')
    // Through the breaker: a hung master must open it even when no request is writing. But an
    // open breaker must not hide the role of a master that answers (partition suite, f: the
    // master stayed "unconfirmed" for 7 s after the heal because its role was not asked).
    const text = breakers.isOpen(node)
      ? await withTimeout(`INFO replication on ${node}`, config.commandTimeoutMs, ask)
      : await breakers.run(node, 'INFO replication', config.commandTimeoutMs, ask)
    return parseReplicationInfo(text)
  } catch {
    return null
  }
}

/**
 * Once the master's own INFO says master, is the last acknowledged write in its history? Decided
 * once per failover (retried while it cannot be read); a history change without a failover (a
 * restarted master) is reported the same way. Sets `next.lastFailover` and returns the verdict, or
 * null when there is nothing to record.
 */
export function checkPromotion (history: AckHistory, next: TopologySnapshot, master: NodeAddress,
  info: ReplicationInfo | null): HistoryVerdict | null {
  if (info?.role !== 'master') return null
  const v = history.observe(nodeKey(master), info)
  if (v === null) return null
  const last = next.lastFailover
  const pending = last !== null && last.acknowledgedWritesAtRisk === null && nodeKey(last.to) === nodeKey(master)
  if (!pending && !v.atRisk) return null
  const base: FailoverRecord = pending ? last : { at: next.refreshedAt!, from: master, to: master, detectedBy: 'replication-id', ...UNCHECKED }
  next.lastFailover = { ...base, ...checkOf(v) }
  return v
}
