/**
 * The gateway's view of the deployment: which node is the master (sentinels with the highest
 * config epoch AND the node's own role agree), which replicas may serve reads, and how many
 * replicas a write must reach before it is acknowledged.
 *
 * Refreshed periodically and at once on every sentinel event about our master set.
 */
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import type { Breakers } from './breakers.js'
import type { Config, Durability } from './config.js'
import { nodeKey, type Connections, type NodeAddress } from './redis/connections.js'
import { withTimeout } from './redis/faults.js'
import type { ReplicationInfo } from './redis/parse.js'
import { checkPromotion, replicationOf } from './master-check.js'
import { Refresher } from './refresher.js'
import { ReplicaLinks } from './replica-links.js'
import { logReplicaChanges } from './replica-state.js'
import { chooseMaster, replicaVerdicts } from './sentinel/answers.js'
import { FailoverHold } from './sentinel/failover-hold.js'
import { AckHistory, checkOf, UNCHECKED, type AckedPosition } from './sentinel/history.js'
import { FAILOVER_END_EVENTS, FAILOVER_START_EVENTS, type SentinelEvent, type Sentinels, type SentinelStatus } from './sentinel/sentinels.js'
import { EventView, grownReplica } from './sentinel/event-view.js'
import { PinnedReplicas } from './sentinel/pinned-replicas.js'
import { nextSnapshot, seenReplicas } from './sentinel/refresh-snapshot.js'
import { emptySnapshot, type TopologySnapshot } from './topology-types.js'
import { holdUntilWritable, sendReserveMs } from './write-hold.js'

/** While a failover looks in progress or the master is unconfirmed, refresh this often. */
const FAST_REFRESH_MS = 100
/** Refresh requests closer together than this are merged (waiting requests must not spin). */
const MIN_REFRESH_GAP_MS = 50

export type { FailoverRecord, ReplicaState, TopologySnapshot } from './topology-types.js'

export class Topology extends EventEmitter {
  private state: TopologySnapshot
  /** The replicas a write must reach (the WAIT count), pinned while the master stays the same. */
  private readonly pinned = new PinnedReplicas()
  /** The last acknowledged write's position, checked against every new master (stale promotion). */
  private readonly history = new AckHistory()
  private readonly hold = new FailoverHold()
  private readonly refresher: Refresher
  private timer: NodeJS.Timeout | null = null
  private closed = false
  private nextChange: Promise<void> | null = null
  /** What sentinel events said that the last completed refresh has not read yet. */
  private readonly events = new EventView()
  /** What each replica says about itself; pushes deaf replication links to reconnect. */
  readonly links: ReplicaLinks

  constructor (private readonly config: Config, readonly sentinels: Sentinels,
    private readonly connections: Connections, private readonly breakers: Breakers, private readonly log: Logger) {
    super()
    this.links = new ReplicaLinks(config, connections, log)
    this.state = emptySnapshot(config.masterName)
    this.refresher = new Refresher(async startedAt => await this.doRefresh(startedAt),
      err => this.log.warn({ err: err.message }, 'topology refresh failed'), MIN_REFRESH_GAP_MS)
    sentinels.on('event', (e: SentinelEvent) => this.onSentinelEvent(e))
    sentinels.on('resubscribed', () => this.requestRefresh())
  }

  get snapshot (): TopologySnapshot { return this.state }
  get sentinelStatuses (): SentinelStatus[] { return this.sentinels.statuses }

  /** First refresh, then the periodic safety-net loop. */
  async start (): Promise<void> {
    await this.refresh()
    this.schedule()
  }

  /** Runs a refresh now, or right after the one in flight (coalesced). */
  requestRefresh (): void { this.refresher.request() }

  /** One refresh, single-flight. Never throws: failures are logged and leave the state as it was. */
  async refresh (): Promise<void> { await this.refresher.now() }

  /**
   * The master to send a write to: confirmed by the sentinels and by its own role, and not
   * being failed over. Waits (refreshing) until `deadline`, then throws 503. Throws 503 at once
   * (Retry-After: until half-open) while the master's circuit breaker is open.
   */
  async writableMaster (deadline: number, mode?: Durability): Promise<NodeAddress> {
    return await holdUntilWritable({
      deadline,
      reserveMs: sendReserveMs(this.config),
      pollMs: FAST_REFRESH_MS,
      ready: () => {
        const s = this.state
        if (s.master !== null) this.breakers.assertClosed(nodeKey(s.master), 'write')
        // A write is sent only once as many replicas are attached as its WAIT must count: a node the
        // sentinels could promote that has not attached yet (an old master back from a failover, still
        // reporting master) is waited for BEFORE anything is applied (503 at the deadline), not after.
        return s.master !== null && s.masterConfirmed && !this.holdingWrites() && !this.behindSwitch() &&
          !this.events.behindGrowth && this.short(mode) <= 0
          ? s.master
          : null
      },
      refusal: late => {
        const s = this.state
        const short = this.short(mode)
        return late
          ? 'writes were held until too little of the retry budget was left to confirm one; nothing was applied'
          : s.failoverInProgress || this.behindSwitch()
            ? 'a failover is in progress; retry shortly'
            : s.master !== null && s.masterConfirmed && short > 0
              ? `writes wait for ${short} more replica(s) the sentinels could promote to attach to the master (WRITE_DURABILITY=${mode})`
              : 'no master confirmed by the sentinels is reachable'
      },
      poll: async ms => {
        this.requestRefresh()
        await this.changedOrTimeout(ms)
      }
    })
  }

  /** Replicas a write of `mode` must count that are not attached (0 when `mode` is not given). */
  private short (mode?: Durability): number {
    return mode === undefined ? 0 : this.waitCount(mode) - this.state.attachedReplicas
  }

  private behindSwitch (): boolean {
    const m = this.state.master
    return this.events.behindSwitch(m === null ? null : nodeKey(m))
  }

  /**
   * Why a write cannot be served now (for /readyz), or null when it can: a master confirmed by the
   * sentinels and by its own role, not held by a failover, its breaker closed, a /kv connection to
   * it ready (the control connection alone says nothing about the pool writes use), and its
   * control connection answering PING within REDIS_COMMAND_TIMEOUT_MS.
   */
  async notWritableReason (): Promise<string | null> {
    const s = this.state
    if (s.master === null || !s.masterConfirmed) return 'no master confirmed by the sentinels and its own role yet'
    if (this.holdingWrites()) return 'a failover is in progress'
    const short = this.short(this.config.durability)
    if (short > 0) return `writes wait for ${short} more replica(s) the sentinels could promote to attach to the master`
    const node = nodeKey(s.master)
    if (this.breakers.isOpen(node)) return 'the master\'s circuit breaker is open'
    const pool = this.connections.existing(s.master)
    if (pool === undefined || !pool.ready) return 'no ready connection to the master for writes'
    try {
      await withTimeout('PING', this.config.commandTimeoutMs, async () => await (await pool.control(this.config.connectTimeoutMs)).ping())
      return null
    } catch {
      return 'the master does not answer PING'
    }
  }

  /** The WAIT count of a write acknowledged with `mode` (WRITE_DURABILITY or `?durability=`). */
  waitCount (mode: Durability): number {
    return mode === 'none' ? 0 : mode === 'all' ? this.state.allReplicas : this.state.requiredReplicas
  }

  /**
   * Whether a write confirmed by `n` replicas may be acknowledged now: the count did not grow while
   * it was in flight (a node the sentinels stopped flagging down, a node newly listed), and no event
   * that may grow it is still unseen by a refresh. Otherwise the write is confirmed again.
   */
  ackCovers (mode: Durability, n: number): boolean {
    return !this.events.behindGrowth && this.waitCount(mode) <= n
  }

  /** A write acknowledged by master `node` at replication offset `offset` (its ROLE after the write). O(1). */
  noteAcknowledged (node: string, offset: number): void { this.history.note(node, offset) }

  /** The last acknowledged write's master, replication id and offset (null: none since the last check). */
  get lastAcknowledged (): AckedPosition | null { return this.history.position }

  /** Resolves on the next state change, or after `ms`. All waiters share one promise. */
  async changedOrTimeout (ms: number): Promise<void> {
    this.nextChange ??= new Promise<void>(resolve => this.once('change', () => { this.nextChange = null; resolve() }))
    let timer: NodeJS.Timeout | undefined
    await Promise.race([this.nextChange, new Promise<void>(resolve => { timer = setTimeout(resolve, ms) })])
    clearTimeout(timer)
  }

  close (): void {
    this.closed = true
    if (this.timer !== null) clearTimeout(this.timer)
    this.refresher.close()
    this.sentinels.close()
    this.connections.closeAll()
  }

  private holdingWrites (): boolean { return this.hold.holds(this.state.failoverInProgress) }

  private schedule (): void {
    if (this.closed) return
    const fast = !this.state.masterConfirmed || this.state.failoverInProgress
    this.timer = setTimeout(() => {
      void this.refresh().finally(() => this.schedule())
    }, fast ? FAST_REFRESH_MS : this.config.refreshIntervalMs)
    this.timer.unref()
  }

  private onSentinelEvent (e: SentinelEvent): void {
    this.log.info({ sentinel: e.sentinel, event: e.channel, detail: e.message }, 'sentinel event')
    if (FAILOVER_START_EVENTS.has(e.channel)) this.markFailover(true)
    if (FAILOVER_END_EVENTS.has(e.channel)) this.markFailover(false)
    this.events.note(e)
    this.pinGrown(e)
    this.requestRefresh()
  }

  /** A replica a growth event names counts in the WAIT count at once (see PinnedReplicas.pinGrown). */
  private pinGrown (e: SentinelEvent): void {
    const node = grownReplica(e)
    const master = this.state.master
    if (node === null || master === null || node === nodeKey(master) || !this.pinned.pinGrown(node)) return
    this.state = { ...this.state, requiredReplicas: Math.max(this.state.requiredReplicas, this.pinned.size) }
    this.emit('change', this.state)
  }

  private markFailover (on: boolean): void {
    this.hold.mark(on)
    if (this.state.failoverInProgress !== on) {
      this.state = { ...this.state, failoverInProgress: on }
      this.emit('change', this.state)
    }
  }

  private async doRefresh (startedAt: number): Promise<void> {
    const answers = await this.sentinels.queryAll()
    const chosen = chooseMaster(answers)
    const prev = this.state
    if (chosen === null) {
      // No sentinel answered: keep the last master the sentinels named, but only while its
      // own role still says master (checked below).
      if (prev.master === null) return
    }
    const master = chosen?.master ?? prev.master!
    const changed = prev.master === null || nodeKey(prev.master) !== nodeKey(master)
    if (changed) this.pinned.masterChanged()

    // Each replica's own state, asked while the master is: replicaState() reads it.
    const probing = this.links.probe(chosen === null ? prev.replicas : replicaVerdicts(chosen))
    // The last write acknowledged on this master before its INFO is read (copied: the record moves on).
    const acked = this.history.position
    const ackedBefore = acked !== null && acked.node === nodeKey(master) ? { replid: acked.replid, offset: acked.offset } : null
    const info = await replicationOf(master, this.connections, this.breakers, this.config)
    const seen = seenReplicas(chosen === null ? [] : replicaVerdicts(chosen), info)
    await probing
    const requiredReplicas = this.pinned.refreshed(seen, chosen !== null, k => this.events.grewSince(k, startedAt))
    const sentinelSaysFailover = this.hold.flaggedBy(answers, master, startedAt, FAST_REFRESH_MS * 5)
    const next = nextSnapshot({
      prev, master, chosen, info, seen, requiredReplicas,
      ackedOffset: ackedBefore !== null && info !== null && info.replid === ackedBefore.replid && !changed ? ackedBefore.offset : null,
      // Read the current state, not `prev`: an end event may have arrived while this refresh ran.
      failoverInProgress: sentinelSaysFailover || (!changed && this.holdingWrites())
    }, this.links, this.config.replicaMaxLagBytes)
    if (changed && prev.master !== null) {
      next.lastFailover = { at: next.refreshedAt!, from: prev.master, to: master, detectedBy: 'sentinels', ...UNCHECKED }
      this.log.info({ from: nodeKey(prev.master), to: nodeKey(master), epoch: next.configEpoch }, 'master changed')
    } else if (changed) {
      this.log.info({ master: nodeKey(master), epoch: next.configEpoch }, 'master discovered')
    }
    if (prev.masterConfirmed !== next.masterConfirmed) {
      this.log.info({ master: nodeKey(master), confirmed: next.masterConfirmed, role: info?.role ?? 'unreachable' }, 'master role check changed')
    }
    this.checkHistory(next, master, info)
    logReplicaChanges(this.log, prev.replicas, next.replicas)
    this.state = next
    this.events.refreshed(startedAt)
    if (this.closed) return
    this.connections.retain(new Set([nodeKey(master), ...next.replicas.map(r => r.key)]))
    // Open replica connections now, so the first read does not find them still connecting.
    for (const r of next.replicas) if (r.healthy) this.connections.get(r)
    this.emit('change', next)
    if (changed) this.emit('master-change', next)
  }

  /** Stale promotion (issue 11, requirement 3): logged, counted (the 'stale-promotion' event). */
  private checkHistory (next: TopologySnapshot, master: NodeAddress, info: ReplicationInfo | null): void {
    const v = checkPromotion(this.history, next, master, info)
    if (v === null) return
    const fields = { master: nodeKey(master), ...checkOf(v) }
    if (!v.atRisk) { this.log.info(fields, 'the new master\'s history contains the last acknowledged write'); return }
    this.log.error(fields, 'stale promotion: the master\'s replication history does not contain the last acknowledged write; acknowledged writes may be lost')
    this.emit('stale-promotion', next.lastFailover)
  }
}
