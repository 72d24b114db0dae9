/**
 * One shard of a Redis Cluster as the write and read paths see it: the same shape, and the same
 * rules, as the whole deployment in Sentinel mode (src/topology.ts), so that the KV service runs
 * unchanged on it (src/cluster/kv.ts):
 *
 * - the master is the node the cluster says serves the shard's slots AND whose own INFO says
 *   role:master (checked on every refresh; the write pipeline checks ROLE again);
 * - the WAIT count is pinned: every replica the cluster lists for the master and does not flag
 *   `fail` (attached or not: the cluster may promote it), and every one seen attached since, until
 *   the cluster flags it failed or stops listing it;
 * - writes wait (then 503) while the master is flagged failing, unconfirmed, or fewer replicas
 *   are attached than the count.
 */
import type { Breakers } from '../breakers.js'
import type { Config, Durability } from '../config.js'
import { holdUntilWritable, sendReserveMs } from '../write-hold.js'
import { nodeKey, type NodeAddress } from '../redis/connections.js'
import type { ReplicationInfo } from '../redis/parse.js'
import type { ReplicaLinks } from '../replica-links.js'
import { replicaState } from '../replica-state.js'
import { AckHistory, UNCHECKED, type AckedPosition } from '../sentinel/history.js'
import { catchingUp } from '../sentinel/refresh-snapshot.js'
import { checkPromotion } from '../master-check.js'
import type { Topology } from '../topology.js'
import { emptySnapshot, type FailoverRecord, type TopologySnapshot } from '../topology-types.js'
import type { ShardNodes } from './nodes.js'

/** While writes wait for the shard, look again this often. */
const WAIT_POLL_MS = 100
/** After a master change, how long a listed replica counts even if the cluster flags it. */
const MASTER_CHANGE_GRACE_MS = 2000

/** What the KV service asks of a topology (src/kv.ts, src/upstash/runner.ts, src/upstash/write-runner.ts): one shard offers it. */
export type KvTopology = Pick<Topology, 'snapshot' | 'writableMaster' | 'requestRefresh' | 'waitCount' | 'ackCovers' | 'noteAcknowledged' | 'changedOrTimeout'>

/** The cluster-wide part a shard needs: refreshes and change notifications. */
export interface ShardHost {
  requestRefresh(): void
  changedOrTimeout(ms: number): Promise<void>
}

/** One shard: its state, refreshed by ClusterTopology, and the write path's questions about it. */
export class Shard implements KvTopology {
  private state: TopologySnapshot
  /** Node ids that belonged to this shard (master or replica): a promoted one keeps the shard. */
  readonly members = new Set<string>()
  private readonly pinned = new Set<string>()
  private readonly history = new AckHistory()
  private masterSince = 0
  /** The last acknowledged write as it was when the refresh in progress began (`markAcknowledged`). */
  private ackedMark: { node: string; replid: string; offset: number } | null = null
  /** The slot ranges served, as last seen. */
  slots: Array<[number, number]> = []

  constructor (readonly id: string, private readonly config: Config, private readonly host: ShardHost,
    private readonly breakers: Breakers) {
    this.state = emptySnapshot(id)
  }

  get snapshot (): TopologySnapshot { return this.state }

  /**
   * Called before a refresh reads the master's INFO: the last write acknowledged by then is what a
   * replica that becomes readable in that refresh must hold (catching up, as in Sentinel mode).
   */
  markAcknowledged (): void {
    const p = this.history.position
    this.ackedMark = p === null ? null : { node: p.node, replid: p.replid, offset: p.offset }
  }

  /**
   * A new view of the shard: `nodes` from CLUSTER NODES, `info` the master's INFO replication
   * (null: it did not answer), `links` the replicas' own accounts. Returns true when the master changed.
   */
  update (nodes: ShardNodes, info: ReplicationInfo | null, links: ReplicaLinks): boolean {
    const prev = this.state
    const master: NodeAddress = { host: nodes.master.host, port: nodes.master.port }
    const changed = prev.master !== null && nodeKey(prev.master) !== nodeKey(master)
    if (prev.master === null || changed) { this.pinned.clear(); this.masterSince = Date.now() }
    this.members.add(nodes.master.id)
    for (const r of nodes.replicas) this.members.add(r.id)
    this.slots = nodes.master.slots

    const attached = new Map((info?.replicas ?? []).map(r => [nodeKey(r), r]))
    const listed = new Set(nodes.replicas.map(r => nodeKey(r)))
    const failed = new Set(nodes.replicas.filter(r => r.failed).map(r => nodeKey(r)))
    for (const [k, r] of attached) if (r.state === 'online' && !failed.has(k)) this.pinned.add(k)
    for (const k of listed) if (!failed.has(k)) this.pinned.add(k)
    for (const k of [...this.pinned]) if (failed.has(k) || (!listed.has(k) && !attached.has(k))) this.pinned.delete(k)

    // The cluster's `fail` flag (agreed by a majority of masters) plays the sentinels' "down" verdict.
    const verdicts = nodes.replicas.map(r => ({ key: nodeKey(r), host: r.host, port: r.port, downByMajority: r.failed, linkOk: !r.suspected, flags: r.failed ? ['fail'] : r.suspected ? ['fail?'] : [] }))
    const states = verdicts.map(v => {
      const st = replicaState(v, attached.get(v.key), info, links, this.config.replicaMaxLagBytes, nodeKey(master))
      return v.downByMajority ? { ...st, reason: 'flagged fail by the cluster' } : st
    })
    // Same master, same history as when the mark was taken: the mark's offset is comparable.
    const mark = this.ackedMark
    this.ackedMark = null
    const ackedOffset = mark !== null && !changed && info !== null && mark.node === nodeKey(master) && mark.replid === info.replid ? mark.offset : null
    const replicas = catchingUp(states, prev, ackedOffset)
    const inGrace = Date.now() - this.masterSince < MASTER_CHANGE_GRACE_MS
    const anyUp = verdicts.some(v => !v.downByMajority) || (inGrace && verdicts.length > 0)
    const now = new Date().toISOString()
    const next: TopologySnapshot = {
      ...prev,
      master,
      masterConfirmed: info?.role === 'master',
      configEpoch: nodes.master.epoch,
      masterReplOffset: info?.masterReplOffset ?? prev.masterReplOffset,
      replicas,
      requiredReplicas: Math.max(this.pinned.size, anyUp ? 1 : 0),
      allReplicas: new Set([...listed, ...attached.keys()]).size,
      attachedReplicas: info === null ? prev.attachedReplicas : [...attached].filter(([k, r]) => r.state === 'online' && !failed.has(k)).length,
      // The cluster suspects or flags the master: its replica may be promoted any moment.
      failoverInProgress: nodes.master.failed || nodes.master.suspected,
      refreshedAt: now
    }
    if (changed) next.lastFailover = { at: now, from: prev.master, to: master, detectedBy: 'cluster', ...UNCHECKED }
    this.checkHistory(next, master, info)
    this.state = next
    return changed
  }

  /** Stale promotion, as in Sentinel mode (src/master-check.ts). */
  private checkHistory (next: TopologySnapshot, master: NodeAddress, info: ReplicationInfo | null): void {
    checkPromotion(this.history, next, master, info)
  }

  /** The shard master to write to, waiting (refreshing) until `deadline`, then 503. See src/topology.ts. */
  async writableMaster (deadline: number, mode?: Durability): Promise<NodeAddress> {
    const short = (): number => mode === undefined ? 0 : this.waitCount(mode) - this.state.attachedReplicas
    return await holdUntilWritable({
      deadline,
      reserveMs: sendReserveMs(this.config),
      pollMs: WAIT_POLL_MS,
      ready: () => {
        const s = this.state
        if (s.master !== null) this.breakers.assertClosed(nodeKey(s.master), 'write')
        return s.master !== null && s.masterConfirmed && !s.failoverInProgress && short() <= 0 ? s.master : null
      },
      refusal: late => {
        const s = this.state
        return late
          ? 'writes to this shard were held until too little of the retry budget was left to confirm one; nothing was applied'
          : s.failoverInProgress
            ? 'the cluster is failing over the master of this key\'s shard; retry shortly'
            : s.master !== null && s.masterConfirmed && short() > 0
              ? `writes to this shard wait for ${short()} more replica(s) the cluster could promote to attach to the master (WRITE_DURABILITY=${mode})`
              : 'no master confirmed by the cluster and its own role is reachable for this key\'s shard'
      },
      poll: async ms => {
        this.host.requestRefresh()
        await this.host.changedOrTimeout(ms)
      }
    })
  }

  waitCount (mode: Durability): number {
    return mode === 'none' ? 0 : mode === 'all' ? this.state.allReplicas : this.state.requiredReplicas
  }

  /** The count did not grow while the write was in flight. */
  ackCovers (mode: Durability, n: number): boolean { return this.waitCount(mode) <= n }

  noteAcknowledged (node: string, offset: number): void { this.history.note(node, offset) }

  requestRefresh (): void { this.host.requestRefresh() }

  async changedOrTimeout (ms: number): Promise<void> { await this.host.changedOrTimeout(ms) }

  /** The last acknowledged write of this shard (for /topology). */
  get lastAcknowledged (): AckedPosition | null { return this.history.position }
}

/**
 * One hash slot's view for the KV service: every call asks which shard serves the slot NOW, so a
 * request retried after a MOVED (a slot migrated to another shard) goes to the new owner.
 */
export class SlotView implements KvTopology {
  constructor (private readonly slot: number | null,
    private readonly shards: { shardForSlot (slot: number | null): Shard; migrating (slot: number): boolean }) {}

  private get shard (): Shard { return this.shards.shardForSlot(this.slot) }
  /** While the slot migrates, no replica: its reads go to the master, which follows ASK for moved keys. */
  get snapshot (): TopologySnapshot {
    const s = this.shard.snapshot
    return this.slot !== null && s.replicas.length > 0 && this.shards.migrating(this.slot) ? { ...s, replicas: [] } : s
  }

  async writableMaster (deadline: number, mode?: Durability): Promise<NodeAddress> { return await this.shard.writableMaster(deadline, mode) }
  waitCount (mode: Durability): number { return this.shard.waitCount(mode) }
  ackCovers (mode: Durability, n: number): boolean { return this.shard.ackCovers(mode, n) }
  noteAcknowledged (node: string, offset: number): void { this.shard.noteAcknowledged(node, offset) }
  requestRefresh (): void { this.shard.requestRefresh() }
  async changedOrTimeout (ms: number): Promise<void> { await this.shard.changedOrTimeout(ms) }
}
