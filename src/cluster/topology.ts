/**
 * The gateway's view of a Redis Cluster: the shards (src/cluster/shard.ts) and which serves each
 * hash slot, from CLUSTER NODES asked of every known node (the freshest answer wins: the highest
 * config epochs of the slot owners), each master's own INFO, and each replica's own account.
 *
 * Refreshed periodically (REDIS_REFRESH_INTERVAL_MS), and at once when a request meets a node
 * fault (a MOVED, a dead master, a master that turned replica). The gateway keeps its own slot map
 * rather than ioredis's Cluster client: the write guarantee needs the write, ROLE and WAIT on one
 * connection to the shard master, and reads need per-replica health, lag and breakers.
 */
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import type { Breakers } from '../breakers.js'
import type { Config, Durability } from '../config.js'
import { GatewayError } from '../errors.js'
import { nodeKey, type Connections, type NodeAddress } from '../redis/connections.js'
import { withTimeout } from '../redis/faults.js'
import type { ReplicationInfo } from '../redis/parse.js'
import { replicationOf } from '../master-check.js'
import { ReplicaLinks } from '../replica-links.js'
import type { AckedPosition } from '../sentinel/history.js'
import type { SentinelStatus } from '../sentinel/sentinels.js'
import type { Topology } from '../topology.js'
import type { TopologySnapshot } from '../topology-types.js'
import { askOf, type AskTarget, type Redirects } from './ask.js'
import { parseClusterNodes, shardsOf, slotTable, type ClusterNode, type ShardNodes } from './nodes.js'
import { Shard } from './shard.js'
import { Refresher } from '../refresher.js'

/** While some shard has no confirmed master, refresh this often. */
const FAST_REFRESH_MS = 100
/** Refresh requests closer together than this are merged. */
const MIN_REFRESH_GAP_MS = 50
/** After the first CLUSTER NODES answer, how long the others are waited for. */
const ANSWER_GRACE_MS = 50

/**
 * What the routes, metrics, the ops page and the command gate use of the Sentinel-mode topology
 * (src/services.ts hands this class to them in its place).
 */
type SentinelModeFacade = Pick<Topology, 'snapshot' | 'sentinelStatuses' | 'lastAcknowledged' | 'notWritableReason' | 'start' |
  'requestRefresh' | 'changedOrTimeout' | 'waitCount' | 'close'>

/**
 * The shards and the slot map; emits 'change' after each refresh, 'master-change' and 'shard-failover'
 * per shard failover, 'slot-migrating' when a slot starts migrating.
 */
export class ClusterTopology extends EventEmitter implements SentinelModeFacade, Redirects {
  /** No sentinels in Cluster mode: listeners of sentinel events (the ops page) hear none. */
  readonly sentinels = new EventEmitter()
  private shardList: Shard[] = []
  private table: Int16Array = new Int16Array(0)
  private readonly refresher: Refresher
  private timer: NodeJS.Timeout | null = null
  private closed = false
  private nextChange: Promise<void> | null = null
  /** Every node address ever seen (seeds first): who to ask CLUSTER NODES. */
  private readonly known = new Map<string, NodeAddress>()
  /** Nodes the last view flags `fail`: not asked (they would only cost a timeout). */
  private failedNodes = new Set<string>()
  /** Slots some node is migrating away (see migrating()). */
  private migratingSlots = new Set<number>()
  readonly links: ReplicaLinks
  private summary: TopologySnapshot

  constructor (private readonly config: Config, private readonly connections: Connections,
    private readonly breakers: Breakers, private readonly log: Logger) {
    super()
    this.links = new ReplicaLinks(config, connections, log)
    for (const s of config.clusterNodes ?? []) this.known.set(nodeKey(s), s)
    this.summary = summarize([])
    this.refresher = new Refresher(async () => await this.doRefresh(),
      err => this.log.warn({ err: err.message }, 'cluster topology refresh failed'), MIN_REFRESH_GAP_MS)
  }

  /** The shards, by their first slot (masters serving none yet last). */
  get shards (): readonly Shard[] { return this.shardList }

  /**
   * The deployment as one Sentinel-mode snapshot (metrics, the command gate's COMMAND tables): the
   * first shard's master, every shard's replicas, the smallest per-shard counts.
   */
  get snapshot (): TopologySnapshot { return this.summary }
  get sentinelStatuses (): SentinelStatus[] { return [] }
  get lastAcknowledged (): AckedPosition | null { return null }

  /** The WAIT count of `mode` on the shard needing the fewest (the summary's; each shard pins its own). */
  waitCount (mode: Durability): number {
    return mode === 'none' ? 0 : mode === 'all' ? this.summary.allReplicas : this.summary.requiredReplicas
  }

  /**
   * Where an ASK answer sends a command: the importing node and the shard it is master of (its WAIT
   * count confirms a write there; a new empty master is a shard too, see shardsOf). Null when `err`
   * is no ASK, or the node is no shard's master in this view (not listed yet, or flagged failing:
   * the request is then retried the ordinary way).
   */
  askTarget (err: unknown): AskTarget | null {
    const ask = askOf(err)
    if (ask === null) return null
    // Reads of the slot go to its master from now on (see migrating()); the next refresh confirms.
    if (!this.migratingSlots.has(ask.slot)) { this.migratingSlots.add(ask.slot); this.emit('slot-migrating', ask.slot); this.requestRefresh() }
    const shard = this.shardMasteredBy(ask.node)
    return shard === undefined ? null : { node: ask.node, shard }
  }

  /** The shard `node` is master of in this view, if any. */
  shardMasteredBy (node: NodeAddress): Shard | undefined {
    const key = nodeKey(node)
    return this.shardList.find(s => s.snapshot.master !== null && nodeKey(s.snapshot.master) === key)
  }

  /**
   * True while `slot` migrates (a node listed it `[slot->-id]` in its last CLUSTER NODES answer, or
   * an ASK for it was met since): the old owner's replicas already lack the keys it moved, so its
   * reads go to the shard master, which answers ASK for those (followed, src/cluster/ask.ts).
   */
  migrating (slot: number): boolean { return this.migratingSlots.has(slot) }

  /** The slots migrating now; 'slot-migrating' for each new one (the near-cache flushes: src/cluster/services.ts). */
  private noteMigrating (now: Set<number>): void {
    const fresh = [...now].filter(s => !this.migratingSlots.has(s))
    this.migratingSlots = now
    for (const s of fresh) this.emit('slot-migrating', s)
  }

  /** The shard serving hash slot `slot` (null: the first shard, for commands naming no key); 503 when none. */
  shardForSlot (slot: number | null): Shard {
    const i = slot === null ? 0 : this.table[slot] ?? -1
    const shard = this.shardList[i]
    if (shard === undefined) {
      this.requestRefresh()
      throw new GatewayError('GW_ERR_REDIS_UNAVAILABLE', 'no shard of the cluster serves this key\'s hash slot now', { retryAfter: 1 })
    }
    return shard
  }

  async start (): Promise<void> {
    await this.refresh()
    this.schedule()
  }

  requestRefresh (): void { this.refresher.request() }

  /** One refresh, single-flight; never throws. */
  async refresh (): Promise<void> { await this.refresher.now() }

  async changedOrTimeout (ms: number): Promise<void> {
    this.nextChange ??= new Promise<void>(resolve => this.once('change', () => { this.nextChange = null; resolve() }))
    let timer: NodeJS.Timeout | undefined
    await Promise.race([this.nextChange, new Promise<void>(resolve => { timer = setTimeout(resolve, ms) })])
    clearTimeout(timer)
  }

  /** Why a write cannot be served now on some shard (for /readyz), or null. */
  async notWritableReason (): Promise<string | null> {
    if (this.shardList.length === 0) return 'no shard of the cluster discovered yet'
    const covered = this.table.every(i => i >= 0)
    if (!covered) return 'some hash slots are served by no shard'
    const reasons = await Promise.all(this.shardList.map(async s => {
      const st = s.snapshot
      if (st.master === null || !st.masterConfirmed) return `shard ${s.id}: no master confirmed by the cluster and its own role`
      if (st.failoverInProgress) return `shard ${s.id}: the cluster is failing over its master`
      const short = s.waitCount(this.config.durability) - st.attachedReplicas
      if (short > 0) return `shard ${s.id}: writes wait for ${short} more replica(s) to attach`
      if (this.breakers.isOpen(nodeKey(st.master))) return `shard ${s.id}: the master's circuit breaker is open`
      const pool = this.connections.existing(st.master)
      if (pool === undefined || !pool.ready) return `shard ${s.id}: no ready connection to the master`
      try {
        await withTimeout('PING', this.config.commandTimeoutMs, async () => await (await pool.control(this.config.connectTimeoutMs)).ping())
        return null
      } catch {
        return `shard ${s.id}: the master does not answer PING`
      }
    }))
    return reasons.find(r => r !== null) ?? null
  }

  close (): void {
    this.closed = true
    if (this.timer !== null) clearTimeout(this.timer)
    this.refresher.close()
    this.connections.closeAll()
  }

  private schedule (): void {
    if (this.closed) return
    const fast = this.shardList.length === 0 || this.shardList.some(s => !s.snapshot.masterConfirmed || s.snapshot.failoverInProgress)
    this.timer = setTimeout(() => { void this.refresh().finally(() => this.schedule()) }, fast ? FAST_REFRESH_MS : this.config.refreshIntervalMs)
    this.timer.unref()
  }

  private async doRefresh (): Promise<void> {
    const nodes = await this.clusterNodes()
    if (nodes === null) return
    for (const n of nodes) if (!n.failed) this.known.set(nodeKey(n), { host: n.host, port: n.port })
    const found = shardsOf(nodes)
    const replicas = found.flatMap(s => s.replicas).filter(r => !r.failed)
    for (const s of this.shardList) s.markAcknowledged()
    const [infos] = await Promise.all([
      // A master the cluster flags failing is not asked: it would only cost a timeout per refresh,
      // while its replica's promotion must be seen at once.
      Promise.all(found.map(async s => s.master.failed || s.master.suspected ? null : await replicationOf(s.master, this.connections, this.breakers, this.config))),
      this.links.probe(replicas)
    ])
    if (this.closed) return
    const claimed = new Set<Shard>()
    const next = found.map((s, i) => this.shardOf(s, infos[i] ?? null, claimed))
    this.shardList = next.map(x => x.shard)
    this.table = slotTable(found)
    this.summary = summarize(this.shardList)
    const live = new Set([...this.known.keys(), ...found.flatMap(s => [s.master, ...s.replicas]).map(n => nodeKey(n))])
    this.connections.retain(live)
    this.breakers.retain(live)
    for (const s of this.shardList) for (const r of s.snapshot.replicas) if (r.healthy) this.connections.get(r)
    this.emit('change', this.summary)
    for (const x of next) {
      if (x.changed) {
        const s = x.shard.snapshot
        this.log.info({ shard: x.shard.id, from: s.lastFailover?.from === null || s.lastFailover === null ? null : nodeKey(s.lastFailover.from), to: nodeKey(s.master!) }, 'shard master changed')
        this.emit('master-change', s)
        this.emit('shard-failover', x.shard.id)
      }
    }
  }

  /**
   * The shard object for `nodes`: the one its master, else another node of it, already belonged to
   * (a promoted replica keeps its shard), and not `claimed` by another shard of this refresh (a
   * replica the cluster moved between masters); else a new one.
   */
  private shardOf (nodes: ShardNodes, info: ReplicationInfo | null, claimed: Set<Shard>): { shard: Shard; changed: boolean } {
    const ids = [nodes.master.id, ...nodes.replicas.map(r => r.id)]
    const free = this.shardList.filter(s => !claimed.has(s))
    let shard = free.find(s => s.members.has(nodes.master.id)) ?? free.find(s => ids.some(id => s.members.has(id)))
    if (shard !== undefined) claimed.add(shard)
    if (shard === undefined) {
      shard = new Shard(nodes.master.id.slice(0, 8), this.config, this, this.breakers)
      this.log.info({ shard: shard.id, master: nodeKey(nodes.master) }, 'shard discovered')
    }
    return { shard, changed: shard.update(nodes, info, this.links) }
  }

  /**
   * CLUSTER NODES of every known node the last view does not flag failed; the answer whose slot
   * owners have the highest config epochs (the freshest after a failover). Nodes that have not
   * answered ANSWER_GRACE_MS after the first answer are not waited for: a dead node must not
   * slow every refresh by a command timeout.
   */
  private async clusterNodes (): Promise<ClusterNode[] | null> {
    const all = [...this.known.entries()]
    const alive = all.filter(([k]) => !this.failedNodes.has(k))
    const targets = (alive.length > 0 ? alive : all).map(([, a]) => a)
    const best = await new Promise<ClusterNode[] | null>(resolve => {
      let pending = targets.length
      let chosen: ClusterNode[] | null = null
      let score = -1
      let timer: NodeJS.Timeout | undefined
      // Each node lists only its own migrating slots: every answer counts.
      const migrating = new Set<number>()
      const finish = (): void => { clearTimeout(timer); if (chosen !== null) this.noteMigrating(migrating); resolve(chosen) }
      for (const addr of targets) {
        void this.askNodes(addr).then(nodes => {
          if (nodes === null) return
          for (const n of nodes) for (const s of n.migrating) migrating.add(s)
          const sc = nodes.filter(n => n.role === 'master' && n.slots.length > 0).reduce((sum, n) => sum + n.epoch, 0)
          if (sc > score) { chosen = nodes; score = sc }
          timer ??= setTimeout(finish, ANSWER_GRACE_MS)
        }).finally(() => { if (--pending === 0) finish() })
      }
    })
    if (best === null) this.log.warn({ asked: targets.length }, 'no cluster node answered CLUSTER NODES')
    else this.failedNodes = new Set(best.filter(n => n.failed).map(n => nodeKey(n)))
    return best
  }

  private async askNodes (addr: NodeAddress): Promise<ClusterNode[] | null> {
    try {
      const text = await withTimeout(`CLUSTER NODES on ${nodeKey(addr)}`, this.config.commandTimeoutMs, async () =>
        String(await (await this.connections.get(addr).control(this.config.connectTimeoutMs)).call('CLUSTER', 'NODES')))
      return parseClusterNodes(text)
    } catch {
      return null
    }
  }
}

/** The whole cluster as one snapshot (see ClusterTopology.snapshot). */
function summarize (shards: readonly Shard[]): TopologySnapshot {
  const s = shards.map(x => x.snapshot)
  const min = (f: (t: TopologySnapshot) => number): number => s.length === 0 ? 0 : Math.min(...s.map(f))
  return {
    masterName: 'cluster',
    master: s[0]?.master ?? null,
    masterConfirmed: s.length > 0 && s.every(t => t.masterConfirmed),
    // A failover in any shard raises the highest epoch: the near-cache's tracker flushes on it.
    configEpoch: Math.max(0, ...s.map(t => t.configEpoch)),
    masterReplOffset: s[0]?.masterReplOffset ?? 0,
    replicas: s.flatMap(t => t.replicas),
    requiredReplicas: min(t => t.requiredReplicas),
    allReplicas: min(t => t.allReplicas),
    attachedReplicas: min(t => t.attachedReplicas),
    failoverInProgress: s.some(t => t.failoverInProgress),
    lastFailover: s.map(t => t.lastFailover).filter(f => f !== null).sort((a, b) => b.at.localeCompare(a.at))[0] ?? null,
    refreshedAt: s[0]?.refreshedAt ?? null
  }
}
