/**
 * How long a failover holds writes in Sentinel mode (src/topology.ts): from a failover start event
 * until its end event (FAILOVER_HOLD_MAX_MS at most, should no end ever be seen), and while the
 * sentinels' answers flag the master we follow `failover_in_progress`.
 */
import { nodeKey, type NodeAddress } from '../redis/connections.js'
import type { SentinelAnswer } from './answers.js'

/** Longest time a failover start event holds writes if no end is ever seen. */
const FAILOVER_HOLD_MAX_MS = 5000

export class FailoverHold {
  private until = 0
  /** When the last failover end event arrived: sentinel answers older than this are stale. */
  private endedAt = 0

  /** A failover start (`on`) or end event arrived. */
  mark (on: boolean, now = Date.now()): void {
    if (on) this.until = now + FAILOVER_HOLD_MAX_MS
    else { this.until = 0; this.endedAt = now }
  }

  /** Writes are held: the snapshot says a failover is in progress (`inProgress`) and its hold has not run out. */
  holds (inProgress: boolean): boolean {
    return inProgress && Date.now() < this.until
  }

  /**
   * Whether the sentinels' `answers` (asked for at `startedAt`) say `master` is being failed over;
   * if so, writes stay held `extendMs` more at least.
   */
  flaggedBy (answers: readonly SentinelAnswer[], master: NodeAddress, startedAt: number, extendMs: number): boolean {
    // Answers asked for before the last failover end event may still carry its flag.
    // Only answers naming the master we follow count: after the switch the leader still flags
    // the OLD master for a moment.
    const flagged = startedAt > this.endedAt &&
      answers.some(a => nodeKey(a.master) === nodeKey(master) && a.masterFlags.includes('failover_in_progress'))
    if (flagged) this.until = Math.max(this.until, Date.now() + extendMs)
    return flagged
  }
}
