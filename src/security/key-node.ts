/**
 * Where the command gate asks a question about one key (an APPEND's current STRLEN, src/security/gate.ts):
 * the node the command itself will run on. In Sentinel mode the master; in Cluster mode
 * (REDIS_CLUSTER_NODES) the master of the shard serving the key's hash slot, as src/cluster/kv.ts
 * routes the command. Any other node answers MOVED, not the key's length.
 *
 * A slot that moved (MOVED) or is moving (ASK) since the gateway's last view is followed once, and
 * only to a node the view knows as a shard master (as src/cluster/ask.ts follows ASK): never a
 * chain of redirects, never a node the gateway does not know. Anything else is the caller's error.
 */
import type { Redis } from 'ioredis'
import calculateSlot from 'cluster-key-slot'
import { askingEach, askOf, movedOf } from '../cluster/ask.js'
import { ClusterTopology } from '../cluster/topology.js'
import { GatewayError } from '../errors.js'
import type { Connections, NodeAddress } from '../redis/connections.js'
import { withTimeout } from '../redis/faults.js'
import type { Topology } from '../topology.js'
import type { Arg } from './keys.js'

/** The bounds of one question (the gate's config). */
export interface KeyQuestionTimeouts { connectTimeoutMs: number; commandTimeoutMs: number }

/** Asks the node serving a key, as the data user (the control user may not read client keys). */
export class KeyNodes {
  /** Cluster mode: src/services.ts hands the cluster topology in the Sentinel-mode class's place. */
  private readonly cluster: ClusterTopology | null

  constructor (private readonly topology: Topology, private readonly connections: Connections,
    private readonly timeouts: KeyQuestionTimeouts) {
    const t: unknown = topology
    this.cluster = t instanceof ClusterTopology ? t : null
  }

  /**
   * STRLEN of `key` on `node` (from nodeOf), following one redirect. Rejects with Redis's own
   * error (WRONGTYPE...), a redirect it could not follow, or a node fault.
   */
  async strlen (key: Arg, node: NodeAddress): Promise<number> {
    try {
      return await this.ask(node, key, false)
    } catch (err) {
      const next = this.redirect(err)
      if (next === null) throw err
      return await this.ask(next.node, key, next.asking)
    }
  }

  /** The master the key's command runs on (Cluster mode: its slot's shard master); 503 when none is known. */
  nodeOf (key: Arg): NodeAddress {
    const t = this.cluster
    if (t === null) {
      const master = this.topology.snapshot.master
      if (master === null) throw new GatewayError('GW_ERR_REDIS_UNAVAILABLE', 'no master is known', { retryAfter: 1 })
      return master
    }
    // 503 (and a refresh) when no shard serves the slot now.
    const master = t.shardForSlot(calculateSlot(key)).snapshot.master
    if (master === null) throw new GatewayError('GW_ERR_REDIS_UNAVAILABLE', 'no master is known for the shard serving this key', { retryAfter: 1 })
    return master
  }

  /** Where a MOVED / ASK answer sends the question (Cluster mode, a known shard master), or null. */
  private redirect (err: unknown): { node: NodeAddress; asking: boolean } | null {
    const t = this.cluster
    if (t === null) return null
    if (askOf(err) !== null) {
      const target = t.askTarget(err)
      return target === null ? null : { node: target.node, asking: true }
    }
    const moved = movedOf(err)
    if (moved === null) return null
    // The view is stale: refreshed in the background; the node named is asked now if it is a shard master.
    t.requestRefresh()
    const master = t.shardMasteredBy(moved.node)?.snapshot.master
    return master == null ? null : { node: master, asking: false }
  }

  private async ask (node: NodeAddress, key: Arg, asking: boolean): Promise<number> {
    const client: Redis = await this.connections.get(node).commands(this.timeouts.connectTimeoutMs)
    return await withTimeout('STRLEN', this.timeouts.commandTimeoutMs, async () => {
      // ASKING applies to the next command on the same connection: sent right before it.
      const [reply] = asking ? askingEach(client, [async () => await client.strlen(key)]) : [client.strlen(key)]
      return Number(await reply)
    })
  }
}
