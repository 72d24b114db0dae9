/**
 * The pub/sub hub of one gateway process: ONE subscriber connection (a Link) shared by every
 * HTTP stream, channels and patterns reference-counted, each Redis message fanned out to the
 * streams that asked for it.
 *
 * Which node (placement.ts, for Sentinel and Cluster mode): a healthy replica (PUBLISH reaches
 * every replica's subscribers), chosen at random among the read router's candidates so that
 * gateway processes spread out; a master when no replica is usable. The hub follows the topology:
 * when its node stops receiving every message, it moves; after falling back to a master it moves
 * back to a replica once one is healthy and STAY_ON_MASTER_MS have passed.
 *
 * Redis pub/sub is at-most-once: messages published while the connection is down, while it moves,
 * or while a replica re-attaches after a failover (Sentinel mode) are lost. Each such episode ends
 * with one `gap` to every listener, sent once the subscriptions are back on a node that receives
 * every message.
 *
 * Patterns are matched here (glob.ts, Redis's own rules) against the messages of the data user's
 * channel patterns (link.ts). A message on a reserved channel (`__...`) is never delivered.
 */
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import { GatewayError } from '../errors.js'
import { nodeKey, type Connections, type NodeAddress } from '../redis/connections.js'
import { patternsExcept } from '../security/acl.js'
import { isReservedChannel, RESERVED_CHANNEL_PREFIX } from '../security/reserved.js'
import { globMatch } from './glob.js'
import { Link, subscriberClient } from './link.js'
import { subscribed } from './wait.js'
import type { HubNodes } from './placement.js'

/** After falling back to the master, stay at least this long before moving to a replica (each move is a gap). */
const STAY_ON_MASTER_MS = 10_000
/**
 * A live connection moves only once its node has stopped receiving for this long: during a failover
 * the promoted replica reports role master a moment before the sentinels name it (measured: moving
 * at once made two needless moves, each a gap).
 */
const MOVE_GRACE_MS = 2000

/** Why messages may have been missed. */
export type GapReason = 'connection-lost' | 'node-switch' | 'master-change'

/** One message as the hub hands it to its listeners (shared by all of them: `frame` is a cache for their encoding). */
export interface HubMessage {
  channel: Buffer
  message: Buffer
  /** The subscribed pattern it matched (pattern subscriptions only). */
  pattern?: string
  /** A sharded channel's message (SSUBSCRIBE: `smessage`). */
  sharded?: boolean
  frame?: Buffer
}

/** What a stream gives the hub. */
export interface HubListener {
  deliver(m: HubMessage): void
  gap(reason: GapReason, since: Date): void
}

/** What the hub needs from the rest of the gateway. */
export interface HubDeps {
  connections: Pick<Connections, 'newClient'>
  /** The topology: its `change` event says `nodes()` may answer differently. */
  topology: EventEmitter
  /** Where the connection may be now (placement.ts: sentinelNodes or clusterNodes). */
  nodes: () => HubNodes
  log: Logger
  /** How long a new subscription waits for the subscriber connection (REDIS_CONNECT_TIMEOUT_MS). */
  timeoutMs: number
}

interface PatternEntry { bytes: Buffer; listeners: Set<HubListener> }

/** The data user's channel patterns (src/security/acl.ts): every channel but the reserved ones. */
const FIREHOSE = patternsExcept(RESERVED_CHANNEL_PREFIX).filter(p => p !== '')

export class PubSubHub {
  private readonly channels = new Map<string, Set<HubListener>>()
  private readonly patterns = new Map<string, PatternEntry>()
  private readonly events = new EventEmitter()
  private link: Link | null = null
  /** The node every message comes from (Sentinel mode: the master); null in Cluster mode. */
  private sourceKey: string | null = null
  /** When the last snapshot naming `sourceKey` was taken: a master change's gap starts no earlier. */
  private sourceSeenAt = new Date()
  private onMasterSince = 0
  private pendingGap: { reason: GapReason; since: Date } | null = null
  /** Since when a live connection's node has been one to move away from (0: it is not). */
  private unusableSince = 0
  private recheck: NodeJS.Timeout | null = null
  private closed = false
  private readonly onChange = (): void => this.follow()

  constructor (private readonly deps: HubDeps) {
    this.events.setMaxListeners(0)
    deps.topology.on('change', this.onChange)
    this.follow()
  }

  /**
   * Subscribes `listener` to `names` (channels, or patterns for `psubscribe`) and resolves once Redis
   * confirmed them. Throws 503 GW_ERR_REDIS_UNAVAILABLE (nothing stays subscribed) when no node can
   * take the subscription within the timeout. Returns the function that unsubscribes.
   */
  async add (listener: HubListener, kind: 'subscribe' | 'psubscribe', names: readonly string[]): Promise<() => void> {
    if (this.closed) throw new GatewayError('GW_ERR_REDIS_UNAVAILABLE', 'the gateway is shutting down', { retryAfter: 1 })
    const keys = [...new Set(names.map(n => Buffer.from(n).toString('latin1')))]
    for (const k of keys) {
      if (kind === 'subscribe') {
        let set = this.channels.get(k)
        if (set === undefined) this.channels.set(k, set = new Set())
        set.add(listener)
      } else {
        let e = this.patterns.get(k)
        if (e === undefined) this.patterns.set(k, e = { bytes: Buffer.from(k, 'latin1'), listeners: new Set() })
        e.listeners.add(listener)
      }
    }
    const remove = (): void => this.remove(listener, kind, keys)
    const channels = kind === 'subscribe' ? keys : []
    await subscribed(this.events, () => { void this.ensureLink().sync() },
      () => this.link?.covers(channels, kind === 'psubscribe') === true, this.deps.timeoutMs, remove)
    return remove
  }

  close (): void {
    this.closed = true
    this.deps.topology.off('change', this.onChange)
    if (this.recheck !== null) clearTimeout(this.recheck)
    this.link?.close()
    this.link = null
    this.channels.clear()
    this.patterns.clear()
  }

  private remove (listener: HubListener, kind: 'subscribe' | 'psubscribe', keys: readonly string[]): void {
    for (const k of keys) {
      if (kind === 'subscribe') {
        const set = this.channels.get(k)
        set?.delete(listener)
        if (set?.size === 0) this.channels.delete(k)
      } else {
        const e = this.patterns.get(k)
        e?.listeners.delete(listener)
        if (e?.listeners.size === 0) this.patterns.delete(k)
      }
    }
    if (!this.closed) void this.link?.sync()
  }

  private ensureLink (): Link {
    if (this.link !== null) return this.link
    const target = this.choose(this.deps.nodes())
    if (target === null) throw new GatewayError('GW_ERR_REDIS_UNAVAILABLE', 'no Redis node is known yet', { retryAfter: 1 })
    return this.connect(target)
  }

  private connect (addr: NodeAddress): Link {
    const node = nodeKey(addr)
    const client = subscriberClient(this.deps.connections, addr, this.deps.log)
    const link = new Link(node, client, () => ({ channels: new Set(this.channels.keys()), patterns: this.patterns.size > 0 }), FIREHOSE)
    link.on('message', (channel: Buffer, message: Buffer) => this.onMessage(channel, message))
    link.on('pmessage', (channel: Buffer, message: Buffer) => this.onPatternMessage(channel, message))
    link.on('lost', () => { this.pendingGap ??= { reason: 'connection-lost', since: new Date() } })
    link.on('synced', () => { this.flushGap(); this.events.emit('synced') })
    link.on('failed', (err: Error) => {
      this.deps.log.warn({ node, err: err.message }, 'pubsub: Redis refused a subscription')
      this.events.emit('failed', err)
    })
    this.link = link
    const onMaster = isMaster(this.deps.nodes(), node)
    this.onMasterSince = onMaster ? Date.now() : 0
    this.deps.log.info({ node, role: onMaster ? 'master' : 'replica' }, 'pubsub: subscriber connection opened')
    return link
  }

  /** Topology change: note a master change (a gap), move the subscriber connection if its node no longer serves. */
  private follow (): void {
    const s = this.deps.nodes()
    const source = s.source
    if (source !== null && this.sourceKey !== null && source !== this.sourceKey && this.link !== null) {
      this.pendingGap ??= { reason: 'master-change', since: this.sourceSeenAt }
    }
    if (source !== null) {
      this.sourceKey = source
      this.sourceSeenAt = new Date()
    }
    if (this.link !== null && !this.closed) {
      // Its replica was promoted: it is on a master from now on (STAY_ON_MASTER_MS counts from here).
      const onMaster = isMaster(s, this.link.node)
      if (onMaster && this.onMasterSince === 0) this.onMasterSince = Date.now()
      if (!onMaster) this.onMasterSince = 0
      const target = this.choose(s)
      const moving = target !== null && nodeKey(target) !== this.link.node
      if (!moving) this.unusableSince = 0
      else if (this.link.live) this.unusableSince ||= Date.now()
      // A live connection waits out transient states (MOVE_GRACE_MS), and the whole of a failover.
      const hold = this.link.live && (s.failoverInProgress || Date.now() - this.unusableSince < MOVE_GRACE_MS)
      if (moving && hold && this.recheck === null) {
        this.recheck = setTimeout(() => { this.recheck = null; this.follow() }, MOVE_GRACE_MS)
        this.recheck.unref()
      }
      if (moving && !hold) {
        this.unusableSince = 0
        this.deps.log.info({ from: this.link.node, to: nodeKey(target) }, 'pubsub: moving the subscriber connection')
        if (this.channels.size > 0 || this.patterns.size > 0) this.pendingGap ??= { reason: 'node-switch', since: new Date() }
        this.link.close()
        this.connect(target)
        void this.link.sync()
      }
    }
    this.flushGap()
  }

  /** Where the subscriber connection should be: see the module comment. */
  private choose (s: HubNodes): NodeAddress | null {
    const { candidates, masters } = s
    const current = this.link?.node
    const here = current === undefined ? undefined : s.receiving.get(current)
    if (here !== undefined) {
      if (!isMaster(s, current!)) return here
      if (candidates.length === 0 || Date.now() - this.onMasterSince < STAY_ON_MASTER_MS) return here
    }
    if (candidates.length > 0) return candidates[Math.floor(Math.random() * candidates.length)]!
    return masters.length === 0 ? null : masters[Math.floor(Math.random() * masters.length)]!
  }

  /** True when the link's node receives every message now: a master, or a replica that gets them. */
  private serving (): boolean {
    const node = this.link?.node
    if (node === undefined || this.link?.live !== true) return false
    return this.deps.nodes().receiving.has(node)
  }

  private flushGap (): void {
    const gap = this.pendingGap
    if (gap === null || !this.serving()) return
    this.pendingGap = null
    const all = new Set<HubListener>()
    for (const set of this.channels.values()) for (const l of set) all.add(l)
    for (const e of this.patterns.values()) for (const l of e.listeners) all.add(l)
    this.deps.log.warn({ reason: gap.reason, since: gap.since.toISOString(), streams: all.size }, 'pubsub: subscriptions restored; messages of the gap may be lost')
    for (const l of all) l.gap(gap.reason, gap.since)
  }

  private onMessage (channel: Buffer, message: Buffer): void {
    if (isReservedChannel(channel)) return
    const set = this.channels.get(channel.toString('latin1'))
    if (set === undefined) return
    const m: HubMessage = { channel, message }
    for (const l of set) l.deliver(m)
  }

  private onPatternMessage (channel: Buffer, message: Buffer): void {
    if (isReservedChannel(channel)) return
    for (const [key, e] of this.patterns) {
      if (!globMatch(e.bytes, channel)) continue
      const m: HubMessage = { channel, message, pattern: Buffer.from(key, 'latin1').toString('utf8') }
      for (const l of e.listeners) l.deliver(m)
    }
  }
}

const isMaster = (s: HubNodes, node: string): boolean => s.masters.some(m => nodeKey(m) === node)
