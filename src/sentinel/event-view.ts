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

/**
 * The replica a growth event names ("host:port"), or null: `<type> <name> <ip> <port> @ <master-name>
 * <master-ip> <master-port>` with type `slave`.
 */
export function grownReplica (e: SentinelEvent): string | null {
  if (!GROWTH_EVENTS.has(e.channel)) return null
  const p = e.message.split(' ')
  return p[0] === 'slave' && p[4] === '@' && p[2] !== undefined && p[3] !== undefined ? `${p[2]}:${p[3]}` : null
}

export class EventView {
  /** Replicas named by a growth event, and when: they count in the WAIT count at once (see grewSince). */
  private readonly grown = new Map<string, number>()
  private grewAt = 0
  private refreshedFrom = 0
  /** The master the last `+switch-master` named ("host:port"), and when it arrived. */
  private switchedTo: string | null = null
  private switchedAt = 0

  /** Notes one sentinel event about our master set. */
  note (e: SentinelEvent, now = Date.now()): void {
    if (GROWTH_EVENTS.has(e.channel)) this.grewAt = now
    const node = grownReplica(e)
    if (node !== null) this.grown.set(node, now)
    if (e.channel === '+switch-master') {
      // <name> <old-ip> <old-port> <new-ip> <new-port>
      const [, , , host, port] = e.message.split(' ')
      this.switchedTo = `${host}:${port}`
      this.switchedAt = now
    }
  }

  /** A refresh that started at `startedAt` completed. */
  refreshed (startedAt: number): void {
    this.refreshedFrom = startedAt
    for (const [node, at] of this.grown) if (at < startedAt) this.grown.delete(node)
  }

  /**
   * A growth event named `node` at or after `startedAt`: a refresh that started then read the
   * sentinels before it, and must not drop the node from the WAIT count on that stale answer.
   */
  grewSince (node: string, startedAt: number): boolean {
    const at = this.grown.get(node)
    return at !== undefined && at >= startedAt
  }

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
