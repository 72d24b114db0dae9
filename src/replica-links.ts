/**
 * What each replica says about itself, and a push for replication links stuck in TCP backoff.
 *
 * The master's INFO says who it hears from; only the replica can say whether it is connected,
 * resyncing or loading. A replica is readable only when its own answer says so (requirement 5 of
 * issue 11): a node mid-resync answers "missing" for keys that exist, whatever the master says.
 *
 * After an asymmetric cut (the master cannot receive from a replica) the replica's link stays
 * "up" on both sides while the master hears no ack; once the cut heals, both sockets still sit in
 * TCP retransmission backoff (seconds to minutes) and no write is confirmed. A fresh connection has
 * no backoff: while the master hears no ack for LINK_STALE_S and the replica says its link is up,
 * the gateway closes the replica's master link (`CLIENT KILL TYPE master` on the replica, control
 * user), and the replica reconnects at once with a partial resync.
 */
import type { Logger } from 'pino'
import type { Config } from './config.js'
import { nodeKey, type Connections, type NodeAddress } from './redis/connections.js'
import { withTimeout } from './redis/faults.js'

/** The master heard no ack from a replica for longer than this: its link is deaf (acks come every second). */
export const LINK_STALE_S = 2
/** At most one kick per replica in this period (a reconnect takes about a second). */
const KICK_GAP_MS = 3000

/** A replica's own replication state (`INFO replication` + `INFO persistence`). */
export interface SelfReport {
  role: string
  /** master_link_status:up */
  linkUp: boolean
  /** master_sync_in_progress:1 (a full resync is being received). */
  syncing: boolean
  /** loading:1 (an RDB being loaded: answers LOADING, or a partial data set). */
  loading: boolean
  /** `master_host:master_port`: the node it replicates from (null: not a replica). */
  master: string | null
}

/** Parses the INFO text (replication and persistence sections) a replica answers. */
export function parseSelfReport (text: string): SelfReport {
  const f: Record<string, string> = {}
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':')
    if (i > 0) f[line.slice(0, i)] = line.slice(i + 1)
  }
  const master = f.master_host === undefined || f.master_port === undefined ? null : `${f.master_host}:${f.master_port}`
  return { role: f.role ?? 'unknown', linkUp: f.master_link_status === 'up', syncing: f.master_sync_in_progress === '1', loading: f.loading === '1', master }
}

/**
 * Why a replica must not serve reads by its own account (undefined: it may). `null`: it did not answer.
 * `master` (host:port as the sentinels name it): a replica still attached to another node (an old
 * master not yet converted, in a split brain) serves that node's data set, not the master's, and
 * while the master cannot be asked nothing else would show it (partition suite f).
 */
export function selfReason (r: SelfReport | null, master?: string): string | undefined {
  if (r === null) return 'does not answer INFO'
  if (r.role !== 'slave') return `reports role ${r.role}`
  if (r.loading) return 'loading its data set'
  if (r.syncing) return 'resyncing from the master'
  if (!r.linkUp) return 'its link to the master is down'
  if (master !== undefined && r.master !== null && r.master !== master) return `replicates from ${r.master}, not the master`
  return undefined
}

/** The master has heard no ack from an attached replica for longer than LINK_STALE_S (undefined: it has). */
export function deafReason (lagSeconds: number | null | undefined): string | undefined {
  return lagSeconds != null && lagSeconds > LINK_STALE_S ? `master hears no ack for ${lagSeconds} s` : undefined
}

export class ReplicaLinks {
  private reports = new Map<string, SelfReport | null>()
  private readonly kickedAt = new Map<string, number>()
  /** Replicas the master could not hear, since when: reported until they are attached and heard again. */
  private readonly deafSince = new Map<string, number>()
  /** Links closed so the replica reconnects (for metrics and tests). */
  kicks = 0

  constructor (private readonly config: Config, private readonly connections: Connections, private readonly log: Logger) {}

  /** Asks every node in `nodes` for its own replication state, in parallel, on its control connection. */
  async probe (nodes: readonly NodeAddress[]): Promise<void> {
    const unique = new Map(nodes.map(n => [nodeKey(n), n]))
    const next = new Map<string, SelfReport | null>()
    await Promise.all([...unique].map(async ([key, addr]) => {
      try {
        const text = await withTimeout(`INFO on ${key}`, this.config.commandTimeoutMs, async () =>
          await (await this.connections.get(addr).control(this.config.connectTimeoutMs)).info('replication', 'persistence'))
        next.set(key, parseSelfReport(text))
      } catch {
        next.set(key, null)
      }
    }))
    this.reports = next
  }

  /** The last answer of `key` (null: it did not answer; undefined: not asked). */
  report (key: string): SelfReport | null | undefined { return this.reports.get(key) }

  /**
   * What /topology says about the link of `replica` (undefined: nothing wrong). `lagSeconds`: the
   * master's INFO lag for it (null: not attached). A link the master could not hear stays reported
   * while it reconnects, until the master lists it attached and hears it again.
   */
  linkNote (replica: NodeAddress, lagSeconds: number | null): string | undefined {
    const key = nodeKey(replica)
    const deaf = deafReason(lagSeconds)
    if (deaf !== undefined) {
      if (!this.deafSince.has(key)) this.deafSince.set(key, Date.now())
      this.kickIfDeaf(replica, lagSeconds)
      return deaf
    }
    const since = this.deafSince.get(key)
    if (since === undefined) return undefined
    if (lagSeconds !== null && this.reports.get(key)?.linkUp === true) { this.deafSince.delete(key); return undefined }
    return `master heard no ack for ${Math.round((Date.now() - since) / 1000) + LINK_STALE_S} s; reconnecting`
  }

  /**
   * The master hears no ack from `replica` although the replica says its link is up: close the
   * replica's master link (it reconnects with a fresh socket). Fire and forget, rate-limited.
   */
  kickIfDeaf (replica: NodeAddress, lagSeconds: number | null): void {
    const key = nodeKey(replica)
    if (deafReason(lagSeconds) === undefined || this.reports.get(key)?.linkUp !== true) return
    const now = Date.now()
    if (now - (this.kickedAt.get(key) ?? 0) < KICK_GAP_MS) return
    this.kickedAt.set(key, now)
    this.kicks++
    this.log.warn({ replica: key, lagSeconds }, 'the master hears no ack from a connected replica: closing its replication link so it reconnects')
    void withTimeout(`CLIENT KILL on ${key}`, this.config.commandTimeoutMs, async () =>
      await (await this.connections.get(replica).control(this.config.connectTimeoutMs)).call('CLIENT', 'KILL', 'TYPE', 'master'))
      .catch((err: unknown) => this.log.warn({ replica: key, err: (err as Error).message }, 'closing a replica\'s replication link failed'))
  }
}
