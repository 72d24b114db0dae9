/**
 * What sentinel events say before a topology refresh has read it: the gateway's view is behind
 * the sentinels from an event until a refresh that started after it completes. Writes wait for
 * that refresh (bounded) instead of being acknowledged on a view that is known to be stale.
 */
import type { SentinelEvent } from './sentinels.js'

/**
 * Events after which a node may have become promotable again (no longer flagged down, converted
 * back to a replica): the WAIT count may be one short until the refresh. (`+slave` is not one:
 * after every switch it lists the dead old master too.)
 */
const GROWTH_EVENTS = new Set(['-sdown', '+convert-to-slave'])
/** Longest a growth event holds writes: a refresh slowed by an unreachable node must not hold them long. */
const GROWTH_HOLD_MAX_MS = 1000
/** Longest a `+switch-master` holds writes to another master than the one it names. */
const SWITCH_HOLD_MAX_MS = 5000

export class EventView {
  private grewAt = 0
  private refreshedFrom = 0
  /** The master the last `+switch-master` named ("host:port"), and when it arrived. */
  private switchedTo: string | null = null
  private switchedAt = 0

  /** Notes one sentinel event about our master set. */
  note (e: SentinelEvent, now = Date.now()): void {
    if (GROWTH_EVENTS.has(e.channel)) this.grewAt = now
    if (e.channel === '+switch-master') {
      // <name> <old-ip> <old-port> <new-ip> <new-port>
      const [, , , host, port] = e.message.split(' ')
      this.switchedTo = `${host}:${port}`
      this.switchedAt = now
    }
  }

  /** A refresh that started at `startedAt` completed. */
  refreshed (startedAt: number): void { this.refreshedFrom = startedAt }

  /** A node may have become promotable that the last completed refresh did not see. */
  get behindGrowth (): boolean {
    return this.grewAt >= this.refreshedFrom && Date.now() - this.grewAt < GROWTH_HOLD_MAX_MS
  }

  /**
   * A `+switch-master` named another master than `master` (the one followed), and no refresh
   * started after it has completed yet. The old master keeps reporting master for seconds, so its
   * own ROLE does not tell: what it is sent meanwhile is lost (a PUBLISH reaches none of the new
   * master's subscribers; a write is not confirmed).
   */
  behindSwitch (master: string | null): boolean {
    return this.switchedTo !== null && master !== null && master !== this.switchedTo &&
      this.switchedAt >= this.refreshedFrom && Date.now() - this.switchedAt < SWITCH_HOLD_MAX_MS
  }
}
