/**
 * The sharded pub/sub hub (SSUBSCRIBE) of one gateway process: the streams of `/ssubscribe`,
 * channels reference-counted as in the hub of `/subscribe` (hub.ts), but held where SPUBLISH
 * delivers them: in Cluster mode on the master of the shard serving the channel's hash slot (a
 * shard's message never crosses to another shard), in Sentinel mode on the master. So one
 * subscriber connection (a sharded Link) per master in use, each subscribing its channels one slot
 * at a time.
 *
 * The hub follows the topology: when a slot's master changes (failover) or the slot moves to
 * another shard, its channels move to the new master. Redis also drops them by itself on the old
 * node (a pushed `sunsubscribe`; the link then reconnects and asks for a refresh of the topology).
 * Each such episode ends with one `gap` to the streams concerned, once their channels are
 * subscribed again: `master-change` (failover), `node-switch` (slot moved), `connection-lost`.
 * A message is taken only from the connection its channel is assigned to (no duplicate while a
 * channel moves), and never from a reserved channel.
 */
import { EventEmitter } from 'node:events'
import calculateSlot from 'cluster-key-slot'
import { GatewayError } from '../errors.js'
import { nodeKey, type NodeAddress } from '../redis/connections.js'
import { isReservedChannel } from '../security/reserved.js'
import type { GapReason, HubDeps, HubListener, HubMessage } from './hub.js'
import { Link, subscriberClient } from './link.js'
import type { ShardTarget } from './placement.js'
import { subscribed } from './wait.js'

/** What the sharded hub needs: the hub's connections, topology, log and timeout, and where a slot is served. */
export interface ShardHubDeps extends Omit<HubDeps, 'nodes'> {
  /** Where a slot's channels are held now (placement.ts: sentinelShardTarget or clusterShardTarget); null: hold still. */
  target: (slot: number) => ShardTarget | null
  /** Asks for a topology refresh (a node answered MOVED, or dropped a slot's channels). */
  refresh: () => void
}

/** Least time between two topology refreshes asked for by MOVED answers (the periodic refresh covers the rest). */
const REFRESH_GAP_MS = 200

interface Channel {
  bytes: Buffer
  slot: number
  listeners: Set<HubListener>
  /** The node ("host:port") holding it, and what served its slot then (ShardTarget.owner); null until placed. */
  node: string | null
  owner: string
}

export class ShardedPubSubHub {
  private readonly channels = new Map<string, Channel>()
  private readonly links = new Map<string, Link>()
  /** Each stream's channels, and the gap it is owed once they are all subscribed again. */
  private readonly streams = new Map<HubListener, { keys: readonly string[]; gap: { reason: GapReason; since: Date } | null }>()
  private readonly events = new EventEmitter()
  private closed = false
  private lastRefresh = 0
  private readonly onChange = (): void => this.place()

  constructor (private readonly deps: ShardHubDeps) {
    this.events.setMaxListeners(0)
    deps.topology.on('change', this.onChange)
  }

  /**
   * Subscribes `listener` to the channels `names` and resolves once Redis confirmed them. Throws 503
   * GW_ERR_REDIS_UNAVAILABLE (nothing stays subscribed) when they cannot be placed within the
   * timeout. Returns the function that unsubscribes.
   */
  async add (listener: HubListener, _kind: 'ssubscribe', names: readonly string[]): Promise<() => void> {
    if (this.closed) throw new GatewayError('GW_ERR_REDIS_UNAVAILABLE', 'the gateway is shutting down', { retryAfter: 1 })
    const keys = [...new Set(names.map(n => Buffer.from(n).toString('latin1')))]
    for (const k of keys) {
      let c = this.channels.get(k)
      if (c === undefined) {
        const bytes = Buffer.from(k, 'latin1')
        this.channels.set(k, c = { bytes, slot: calculateSlot(bytes), listeners: new Set(), node: null, owner: '' })
      }
      c.listeners.add(listener)
    }
    this.streams.set(listener, { keys, gap: null })
    const remove = (): void => this.remove(listener)
    await subscribed(this.events, () => this.place(), () => this.covers(keys), this.deps.timeoutMs, remove)
    return remove
  }

  close (): void {
    this.closed = true
    this.deps.topology.off('change', this.onChange)
    for (const link of this.links.values()) link.close()
    this.links.clear()
    this.channels.clear()
    this.streams.clear()
  }

  private remove (listener: HubListener): void {
    const s = this.streams.get(listener)
    this.streams.delete(listener)
    for (const k of s?.keys ?? []) {
      const c = this.channels.get(k)
      c?.listeners.delete(listener)
      if (c?.listeners.size === 0) this.channels.delete(k)
    }
    if (!this.closed) this.place()
  }

  /** Every channel on the node now serving its slot; links left without a channel closed, the others brought in step. */
  private place (): void {
    if (this.closed) return
    for (const c of this.channels.values()) {
      const t = this.deps.target(c.slot)
      if (t === null) continue
      const node = nodeKey(t.node)
      if (c.node === node) continue
      if (c.node !== null) {
        this.owe(c.listeners, c.owner === t.owner ? 'master-change' : 'node-switch')
        this.deps.log.info({ slot: c.slot, from: c.node, to: node }, 'pubsub: moving a sharded channel to the master now serving its slot')
      }
      c.node = node
      c.owner = t.owner
      if (!this.links.has(node)) this.connect(node, t.node)
    }
    const used = new Set<string | null>()
    for (const c of this.channels.values()) used.add(c.node)
    for (const [node, link] of this.links) {
      if (used.has(node)) {
        void link.sync()
      } else {
        link.close()
        this.links.delete(node)
      }
    }
    this.flushGaps()
  }

  private connect (node: string, addr: NodeAddress): void {
    const client = subscriberClient(this.deps.connections, addr, this.deps.log)
    const wants = (): { channels: Set<string>; patterns: boolean } => {
      const channels = new Set<string>()
      for (const [k, c] of this.channels) if (c.node === node) channels.add(k)
      return { channels, patterns: false }
    }
    const link = new Link(node, client, wants, [], true)
    link.on('message', (channel: Buffer, message: Buffer) => this.onMessage(node, channel, message))
    link.on('lost', () => this.owe(this.listenersOn(node), 'connection-lost'))
    link.on('moved', () => {
      // Until the topology sees the move, each refresh subscribes again and meets MOVED again: at most 5 a second.
      if (Date.now() - this.lastRefresh < REFRESH_GAP_MS) return
      this.lastRefresh = Date.now()
      this.deps.refresh()
    })
    link.on('synced', () => { this.flushGaps(); this.events.emit('synced') })
    link.on('failed', (err: Error) => {
      this.deps.log.warn({ node, err: err.message }, 'pubsub: Redis refused a sharded subscription')
      this.events.emit('failed', err)
    })
    this.links.set(node, link)
  }

  private covers (keys: readonly string[]): boolean {
    return keys.every(k => {
      const node = this.channels.get(k)?.node
      return node != null && this.links.get(node)?.covers([k], false) === true
    })
  }

  private listenersOn (node: string): Set<HubListener> {
    const out = new Set<HubListener>()
    for (const c of this.channels.values()) if (c.node === node) for (const l of c.listeners) out.add(l)
    return out
  }

  private owe (listeners: Iterable<HubListener>, reason: GapReason): void {
    for (const l of listeners) {
      const s = this.streams.get(l)
      if (s !== undefined) s.gap ??= { reason, since: new Date() }
    }
  }

  /** Each owed gap goes out once all the stream's channels are subscribed again. */
  private flushGaps (): void {
    for (const [l, s] of this.streams) {
      if (s.gap === null || !this.covers(s.keys)) continue
      this.deps.log.warn({ reason: s.gap.reason, since: s.gap.since.toISOString() }, 'pubsub: sharded subscriptions restored; messages of the gap may be lost')
      l.gap(s.gap.reason, s.gap.since)
      s.gap = null
    }
  }

  private onMessage (node: string, channel: Buffer, message: Buffer): void {
    if (isReservedChannel(channel)) return
    const c = this.channels.get(channel.toString('latin1'))
    if (c === undefined || c.node !== node) return
    const m: HubMessage = { channel, message, sharded: true }
    for (const l of c.listeners) l.deliver(m)
  }
}

/** Hash slot of every channel of one `/ssubscribe` request, or null when they span slots (Redis Cluster's CROSSSLOT). */
export function commonSlot (names: readonly string[]): number | null {
  const slots = new Set(names.map(n => calculateSlot(Buffer.from(n))))
  return slots.size === 1 ? [...slots][0]! : null
}
