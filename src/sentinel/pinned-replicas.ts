/**
 * The replicas a `replicated` write must reach in Sentinel mode (its WAIT count, the snapshot's
 * `requiredReplicas`), pinned for as long as the master stays the same: a replica that drops out
 * for a moment lowers no count a write is acknowledged with, and a node the sentinels could promote
 * counts before it has attached. Kept by src/topology.ts: one update per refresh, one per growth event.
 */
import type { SeenReplicas } from './refresh-snapshot.js'

/** After a master change, how long a listed replica counts as one a write must reach even if flagged. */
const MASTER_CHANGE_GRACE_MS = 2000

export class PinnedReplicas {
  /** Replicas seen attached to the current master: a write must reach all of them. */
  private readonly nodes = new Set<string>()
  /** When the current master was first seen. */
  private masterSince = 0

  get size (): number { return this.nodes.size }

  /** A new master: the old one's replicas no longer count, and the grace period starts. */
  masterChanged (now = Date.now()): void {
    this.nodes.clear()
    this.masterSince = now
  }

  /**
   * A replica a sentinel no longer flags down (`-sdown`) or has just converted counts in the WAIT
   * count at once, not only once a refresh has read it: a refresh can take seconds (a node just back
   * from a partition answers nothing on the connection that was cut), and meanwhile writes would be
   * acknowledged without the node the sentinels may promote next (partition suite f). Writes then
   * wait for it to attach; the first refresh started after the event decides whether it stays.
   * Returns false when `node` already counted.
   */
  pinGrown (node: string): boolean {
    if (this.nodes.has(node)) return false
    this.nodes.add(node)
    return true
  }

  /**
   * One refresh saw `seen` (`answered`: some sentinel answered); returns the WAIT count.
   * `grewSince(key)`: a growth event named that replica after this refresh read the sentinels.
   */
  refreshed (seen: SeenReplicas, answered: boolean, grewSince: (key: string) => boolean): number {
    const { verdicts, attached, listed, down } = seen
    for (const [k, r] of attached) if (r.state === 'online') this.nodes.add(k)
    // A node the sentinels list and do not flag down could be promoted: it counts, attached or not
    // (writes then wait for it to attach and catch up). Scenario f of the partition suite: an old
    // master back from a cut, still reporting master, listed again, then promoted.
    for (const v of verdicts) if (!down.has(v.key)) this.nodes.add(v.key)
    // ...unless a growth event named it after this refresh read the sentinels (see pinGrown).
    for (const v of verdicts) if (down.has(v.key) && !grewSince(v.key)) this.nodes.delete(v.key)
    for (const k of [...this.nodes]) if (answered && !listed.has(k) && !attached.has(k) && !grewSince(k)) this.nodes.delete(k)
    // Right after a switch the sentinels list the new master's replicas as `disconnected` for a
    // moment: during that grace period any listed replica keeps the count at one at least.
    const inGrace = Date.now() - this.masterSince < MASTER_CHANGE_GRACE_MS
    const anyUp = verdicts.some(v => !down.has(v.key)) || (inGrace && verdicts.length > 0)
    return Math.max(this.nodes.size, anyUp ? 1 : 0)
  }
}
