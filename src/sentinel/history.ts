/**
 * Stale-promotion detection (issue 11, requirement 3): does the master we follow now hold the last
 * write this gateway acknowledged?
 *
 * Redis numbers a master's replication stream by (replication id, byte offset). A promoted replica
 * takes a new id and keeps the old one as `master_replid2`, valid up to `second_repl_offset - 1`
 * (Redis sets it to the offset at promotion + 1: the first byte a PSYNC may ask for). A restarted
 * master that reloads its replication info from the RDB does the same. So the history of a node
 * contains a position (id, offset) iff it is on the node's current id at or below its offset, or
 * on its previous id at or below the point where that history was left. Anything else (an old
 * master promoted back after the gateway acknowledged writes on another node, a master restarted
 * without the data) means acknowledged writes may be gone.
 *
 * Pure logic, no I/O: unit-tested with plain data (test/sentinel-history.test.ts).
 */

/** The replication fields of a node's `INFO replication`. */
export interface ReplHistory {
  replid: string
  replid2: string
  /** `second_repl_offset`: one past the last byte of `replid2` that this node holds (-1: none). */
  secondReplOffset: number
  /** `master_repl_offset`. */
  masterReplOffset: number
}

/** The last acknowledged write: on which master, in which history, up to which byte. */
export interface AckedPosition {
  node: string
  replid: string
  offset: number
  /** The acknowledging master's own previous history, as last read (to measure a gap). */
  replid2: string
  secondReplOffset: number
  /**
   * Other replication ids under which the same offset is the same write: the histories of masters
   * already confirmed to hold it (a promoted node keeps the offsets of the history it came from).
   * A node still on one of those histories holds it too. At most `MAX_ALSO_IN`.
   */
  alsoIn: string[]
}

/** The outcome of comparing a (new) master's history with the last acknowledged position. */
export interface HistoryVerdict {
  /** The node's history does not contain the acknowledged position. */
  atRisk: boolean
  /** Bytes of acknowledged replication stream the node lacks; null when the histories share nothing we can see. */
  gap: number | null
  /** The position compared (null: nothing was acknowledged since the last check). */
  acknowledged: AckedPosition | null
  /** The node's history as read. */
  history: ReplHistory
}

/** Redis's "no previous id" value. */
const NO_REPLID = '0000000000000000000000000000000000000000'

const known = (id: string): boolean => id !== '' && id !== NO_REPLID
const MAX_ALSO_IN = 4

/** True when the node whose INFO is `h` holds every byte up to `acked.offset` of `acked.replid`. */
export function historyContains (h: ReplHistory, acked: { replid: string; offset: number }): boolean {
  if (!known(acked.replid)) return false
  if (h.replid === acked.replid) return h.masterReplOffset >= acked.offset
  return h.replid2 === acked.replid && h.secondReplOffset - 1 >= acked.offset
}

/**
 * The last offset the node shares with the acknowledged history, or null when no shared id is
 * visible (histories further apart than one promotion on each side).
 */
export function sharedOffset (h: ReplHistory, acked: AckedPosition): number | null {
  if (h.replid === acked.replid) return h.masterReplOffset
  if (h.replid2 === acked.replid) return h.secondReplOffset - 1
  // The acknowledging master was promoted from the node's current history (scenario f: M
  // promoted back after writes were acknowledged on R1).
  if (known(acked.replid2) && acked.replid2 === h.replid) return Math.min(h.masterReplOffset, acked.secondReplOffset - 1)
  // Both were promoted from the same history.
  if (known(acked.replid2) && acked.replid2 === h.replid2) return Math.min(h.secondReplOffset, acked.secondReplOffset) - 1
  return null
}

/** The most of the position that `h` holds, over every id it is known under. */
function bestShared (h: ReplHistory, a: AckedPosition): number | null {
  let best = sharedOffset(h, a)
  for (const id of a.alsoIn) {
    const s = h.replid === id ? h.masterReplOffset : h.replid2 === id ? h.secondReplOffset - 1 : null
    if (s !== null && (best === null || s > best)) best = s
  }
  return best
}

/**
 * The last acknowledged position and the masters' histories as last read. The write paths call
 * `note` once per acknowledged write (O(1)); the topology calls `observe` with the master's INFO
 * on every refresh, and gets a verdict when there is something to decide.
 */
export class AckHistory {
  private acked: AckedPosition | null = null
  /** Last history read per node that was master (a few entries: the masters followed). */
  private readonly reads = new Map<string, ReplHistory>()
  private seen: { node: string; replid: string } | null = null

  /** What was last acknowledged (for /topology), or null. */
  get position (): AckedPosition | null { return this.acked }

  /**
   * A write acknowledged by `node` at replication offset `offset` (ROLE after the write). Its
   * history is the one read by the refresh before it: if the node changed history since, the
   * next `observe` sees the id change and checks.
   */
  note (node: string, offset: number): void {
    const h = this.reads.get(node)
    if (h === undefined || !Number.isFinite(offset)) return
    const a = this.acked
    if (a !== null && a.node === node && a.replid === h.replid) {
      // A later write is only in this master's own history.
      if (offset > a.offset) { a.offset = offset; a.alsoIn = [] }
      return
    }
    this.acked = { node, replid: h.replid, offset, replid2: h.replid2, secondReplOffset: h.secondReplOffset, alsoIn: [] }
  }

  /**
   * The master `node` (its own role says master) reports history `h`. Returns a verdict when the
   * master or its replication id changed since the last call, or when the last acknowledged
   * position lies in another history than `h`'s; null when there is nothing to decide. A
   * position found in `h` moves to `h`'s history (same offsets), so a later promotion is checked
   * against this master; one not found is reported once, then dropped.
   */
  observe (node: string, info: ReplHistory): HistoryVerdict | null {
    const h = { replid: info.replid, replid2: info.replid2, secondReplOffset: info.secondReplOffset, masterReplOffset: info.masterReplOffset }
    this.reads.delete(node)
    this.reads.set(node, h)
    if (this.reads.size > 8) this.reads.delete(this.reads.keys().next().value!)
    const moved = this.seen !== null && (this.seen.node !== node || this.seen.replid !== h.replid)
    this.seen = { node, replid: h.replid }
    const a = this.acked
    if (a === null) return moved ? { atRisk: false, gap: 0, acknowledged: null, history: h } : null
    // Same history as the acknowledged write: the offset read may predate the ack, nothing to check.
    if (a.replid === h.replid) return moved ? { atRisk: false, gap: 0, acknowledged: { ...a }, history: h } : null
    const acknowledged = { ...a }
    if (historyContains(h, a) || a.alsoIn.some(replid => historyContains(h, { replid, offset: a.offset }))) {
      const alsoIn = [a.replid, ...a.alsoIn.filter(id => id !== h.replid)].slice(0, MAX_ALSO_IN)
      this.acked = { node, replid: h.replid, offset: a.offset, replid2: h.replid2, secondReplOffset: h.secondReplOffset, alsoIn }
      return { atRisk: false, gap: 0, acknowledged, history: h }
    }
    this.acked = null
    const shared = bestShared(h, a)
    return { atRisk: true, gap: shared === null ? null : Math.max(0, a.offset - shared), acknowledged, history: h }
  }
}

/** What /topology's `lastFailover` says about the check (null fields: not decided yet). */
export interface HistoryCheck {
  /** null until the new master's own INFO was read (retried on every refresh). */
  acknowledgedWritesAtRisk: boolean | null
  acknowledgedOffsetGap: number | null
  acknowledged: { node: string; replid: string; offset: number } | null
  newMasterHistory: ReplHistory | null
}

/** The check of a failover whose new master has not been read yet. */
export const UNCHECKED: HistoryCheck = { acknowledgedWritesAtRisk: null, acknowledgedOffsetGap: null, acknowledged: null, newMasterHistory: null }

/** A verdict as /topology shows it. */
export function checkOf (v: HistoryVerdict): HistoryCheck {
  const a = v.acknowledged
  return {
    acknowledgedWritesAtRisk: v.atRisk,
    acknowledgedOffsetGap: v.gap,
    acknowledged: a === null ? null : { node: a.node, replid: a.replid, offset: a.offset },
    newMasterHistory: v.history
  }
}
