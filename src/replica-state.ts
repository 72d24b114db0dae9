/**
 * One replica's state as the gateway shows and uses it (readable or why not, attachment, lag,
 * link trouble), from the sentinels' verdict, the master's INFO and the replica's own account.
 */
import type { Logger } from 'pino'
import type { ReplicationInfo } from './redis/parse.js'
import { selfReason, type ReplicaLinks } from './replica-links.js'
import type { ReplicaState } from './topology-types.js'

/** What the sentinels say of a replica (src/sentinel/answers.ts replicaVerdicts). */
export interface Verdict { key: string; host: string; port: number; downByMajority: boolean; linkOk: boolean; flags: string[] }

/**
 * The state of the replica `v`: `att` is its line in the master's INFO (undefined: not attached),
 * `info` the master's INFO (null: the master could not be asked).
 */
export function replicaState (v: Verdict, att: ReplicationInfo['replicas'][number] | undefined, info: ReplicationInfo | null,
  links: ReplicaLinks, maxLagBytes: number, master?: string): ReplicaState {
  const lagBytes = att !== undefined && info !== null ? Math.max(0, info.masterReplOffset - att.offset) : null
  // The master answers but hears no ack from this replica: report it, and push a reconnect.
  const link = info === null ? undefined : links.linkNote(v, att?.state === 'online' ? att.lag : null)
  const own = links.report(v.key)
  // Whatever the master (or its breaker) says: a replica resyncing, loading or detached answers
  // "missing" for keys that exist (issue 11, requirement 5). While the master cannot be asked, the
  // replica's own word must also name the master it follows (`master`, when given): one still
  // attached to an old master serves that node's data set (partition suite f). When the master
  // answers, its INFO is the proof of attachment instead (whatever name the replica knows it by).
  const ownReason = own === undefined ? 'not asked for its own state yet' : selfReason(own, info === null ? master : undefined)
  let reason: string | undefined
  if (v.downByMajority) reason = 'down according to the sentinels'
  else if (ownReason !== undefined) reason = ownReason
  else if (info !== null && att?.state !== 'online') reason = 'not attached to the master'
  // While the master cannot be asked (it may be dead), replicas that say they are attached and in
  // sync with it keep serving possibly stale reads.
  else if (lagBytes !== null && maxLagBytes > 0 && lagBytes > maxLagBytes) reason = `lagging ${lagBytes} bytes`
  return {
    key: v.key,
    host: v.host,
    port: v.port,
    healthy: reason === undefined,
    ...(reason === undefined ? {} : { reason }),
    attached: att?.state === 'online',
    lagBytes,
    lagSeconds: att?.lag ?? null,
    ...(link === undefined ? {} : { link }),
    offset: att?.offset ?? null,
    sentinelFlags: v.flags
  }
}

/** One log line per replica whose readability changed. */
export function logReplicaChanges (log: Logger, before: readonly ReplicaState[], after: readonly ReplicaState[]): void {
  const was = new Map(before.map(r => [r.key, r.healthy]))
  for (const r of after) {
    if (was.get(r.key) !== r.healthy) log.info({ replica: r.key, healthy: r.healthy, reason: r.reason }, 'replica health changed')
  }
}
