/**
 * Server-assisted invalidation for the near-cache (Redis client-side caching, two-connection mode).
 *
 * Per replica that serves reads:
 *   - one invalidation connection (RESP2: ioredis 5 speaks only RESP2) that takes its `CLIENT ID`
 *     and subscribes to `__redis__:invalidate`;
 *   - `CLIENT TRACKING ON REDIRECT <that id>` on every data connection of the replica's pool, sent
 *     again whenever the data connection or the invalidation connection (new id) reconnects.
 * A read may fill the cache only through a data connection whose tracking points at the live
 * invalidation connection (`canFill`).
 *
 * The whole cache is flushed when anything could make an invalidation go missing: the invalidation
 * connection closes or reconnects; a tracked data connection closes (its tracked keys are forgotten
 * by the server); the heartbeat (PING every HEARTBEAT_MS on the invalidation connection) is not
 * answered in time (a frozen replica never closes its socket); the server flushes (null message);
 * and on every topology change that matters (master, config epoch or set of readable replicas).
 */
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { closeClient, nodeKey, type Connections, type NodePool } from '../redis/connections.js'
import type { TopologySnapshot } from '../topology.js'
import type { FlushReason, NearCache } from './near-cache.js'

const CHANNEL = '__redis__:invalidate'
/** Heartbeat period: a PING not answered by the next beat flushes the cache. */
export const HEARTBEAT_MS = 100

/** What a tracked replica needs from its owner. */
interface Owner {
  readonly cache: NearCache
  readonly connections: Connections
  readonly log: Logger
}

/** One replica: its invalidation connection and the tracking state of its data connections. */
class TrackedReplica {
  /** CLIENT ID of the subscribed invalidation connection; null while there is none. */
  private redirectId: string | null = null
  /** Data connections whose tracking redirects to `redirectId` (confirmed by the server). */
  private tracked = new WeakMap<Redis, string>()
  private readonly sub: Redis
  private awaitingPong = false
  /** The last heartbeat was missed: no fills until a PONG arrives. */
  private stalled = false
  private closed = false
  private readonly listeners: Array<{ c: Redis; ready: () => void; close: () => void }> = []

  constructor (readonly key: string, readonly pool: NodePool, private readonly owner: Owner) {
    // The control user: the data user may not subscribe to `__redis__:*` channels.
    this.sub = owner.connections.newClient(pool.address, 'skv-gateway-invalidate', { autoResubscribe: false }, 'control')
    this.sub.on('error', () => { /* the pool logs the node's connection errors */ })
    this.sub.on('ready', () => { void this.subscribe() })
    this.sub.on('close', () => this.lost('invalidation-connection'))
    this.sub.on('messageBuffer', (channel: Buffer, message: unknown) => {
      if (channel.toString() !== CHANNEL) return
      if (Array.isArray(message)) for (const k of message as Buffer[]) owner.cache.invalidate(k.toString())
      else if (Buffer.isBuffer(message)) owner.cache.invalidate(message.toString())
      else owner.cache.flush('server-flush') // null: the server flushed its data set (FLUSHALL, full resync)
    })
    for (const c of pool.dataClients) {
      const l = {
        c,
        ready: () => this.track(c),
        close: () => {
          if (!this.tracked.has(c)) return
          this.tracked.delete(c)
          this.owner.cache.flush('data-connection')
        }
      }
      c.on('ready', l.ready)
      c.on('close', l.close)
      this.listeners.push(l)
    }
  }

  canFill (client: Redis): boolean {
    return !this.stalled && this.redirectId !== null && this.tracked.get(client) === this.redirectId
  }

  /** True when reads of this replica can fill the cache through at least one connection. */
  get active (): boolean {
    return !this.stalled && this.redirectId !== null && this.pool.dataClients.some(c => this.tracked.get(c) === this.redirectId)
  }

  /**
   * One heartbeat: a PING still unanswered since the last beat means the replica may be frozen.
   * The verdict waits for this loop turn's I/O (setImmediate runs after the poll phase), so a PONG
   * that arrived while this process itself was stalled is read first and not taken for a miss.
   */
  beat (): void {
    if (this.closed || this.redirectId === null) return
    if (this.awaitingPong) {
      setImmediate(() => {
        if (!this.awaitingPong || this.stalled || this.redirectId === null) return
        this.stalled = true
        this.owner.cache.flush('heartbeat')
        this.owner.log.warn({ replica: this.key, heartbeatMs: HEARTBEAT_MS }, 'near-cache: invalidation connection missed a heartbeat: cache flushed')
      })
      return
    }
    this.awaitingPong = true
    this.sub.ping().then(() => {
      // Replies come in order: every invalidation sent before this PONG has arrived.
      this.awaitingPong = false
      this.stalled = false
    }, () => { /* the connection dropped: 'close' flushes */ })
  }

  /** Stops tracking this replica. The caller flushes the cache (the topology changed). */
  close (): void {
    this.closed = true
    for (const l of this.listeners) {
      l.c.off('ready', l.ready)
      l.c.off('close', l.close)
      // The pool may live on (this replica promoted to master): stop tracking on it.
      if (this.tracked.has(l.c) && l.c.status === 'ready') l.c.call('CLIENT', 'TRACKING', 'OFF').catch(() => {})
    }
    this.sub.removeAllListeners('close')
    closeClient(this.sub)
    this.lost()
  }

  private async subscribe (): Promise<void> {
    try {
      const id = String(await this.sub.call('CLIENT', 'ID'))
      await this.sub.subscribe(CHANNEL)
      if (this.closed || this.sub.status !== 'ready') return
      this.redirectId = id
      this.awaitingPong = false
      this.stalled = false
      for (const c of this.pool.dataClients) this.track(c)
    } catch (err) {
      this.owner.log.warn({ replica: this.key, err: (err as Error).message }, 'near-cache: cannot subscribe to invalidations')
      // Reconnect and try again (ioredis reconnects with backoff).
      if (!this.closed) this.sub.disconnect(true)
    }
  }

  /** Turns tracking on for one data connection, redirected to the current invalidation connection. */
  private track (c: Redis): void {
    const id = this.redirectId
    if (id === null || this.closed || c.status !== 'ready') return
    c.call('CLIENT', 'TRACKING', 'ON', 'REDIRECT', id).then(() => {
      if (id === this.redirectId && !this.closed && c.status === 'ready') this.tracked.set(c, id)
    }, (err: Error) => {
      this.owner.log.warn({ replica: this.key, err: err.message }, 'near-cache: CLIENT TRACKING failed on a connection: it will not fill the cache')
    })
  }

  /**
   * The invalidation connection is gone: nothing filled through it can be trusted any more
   * (flushed with `reason`, when given and anything could have been filled).
   */
  private lost (reason?: FlushReason): void {
    const had = this.redirectId !== null
    this.redirectId = null
    this.tracked = new WeakMap()
    this.awaitingPong = false
    if (had && reason !== undefined) this.owner.cache.flush(reason)
  }
}

export class InvalidationTracker implements Owner {
  private readonly replicas = new Map<string, TrackedReplica>()
  private readonly heartbeat: NodeJS.Timeout
  /** What the cache's contents depend on: master, epoch and readable replicas. */
  private signature = ''

  constructor (readonly cache: NearCache, readonly connections: Connections, readonly log: Logger) {
    this.heartbeat = setInterval(() => { for (const r of this.replicas.values()) r.beat() }, HEARTBEAT_MS)
    this.heartbeat.unref()
  }

  /** May a read of `node` sent on `client` fill the cache? */
  canFill (node: string, client: Redis): boolean {
    return this.replicas.get(node)?.canFill(client) ?? false
  }

  /** Replicas whose reads fill the cache right now. */
  get activeReplicas (): string[] {
    return [...this.replicas.values()].filter(r => r.active).map(r => r.key)
  }

  /** Follows the topology: track exactly the readable replicas; flush when what the cache holds depends on changed. */
  follow (s: TopologySnapshot): void {
    const readable = s.replicas.filter(r => r.healthy)
    const signature = [s.master === null ? '-' : nodeKey(s.master), s.configEpoch, ...readable.map(r => r.key).sort()].join(' ')
    let flushed = false
    const flush = (): void => { if (!flushed) { this.cache.flush('topology'); flushed = true } }
    if (signature !== this.signature) {
      if (this.signature !== '') flush()
      this.signature = signature
    }
    const keep = new Set<string>()
    for (const r of readable) {
      const pool = this.connections.existing(r)
      if (pool === undefined) continue
      keep.add(r.key)
      const t = this.replicas.get(r.key)
      if (t?.pool === pool) continue
      if (t !== undefined) { t.close(); flush() }
      this.replicas.set(r.key, new TrackedReplica(r.key, pool, this))
    }
    for (const [k, t] of this.replicas) if (!keep.has(k)) { t.close(); flush(); this.replicas.delete(k) }
  }

  close (): void {
    clearInterval(this.heartbeat)
    for (const t of this.replicas.values()) t.close()
    this.replicas.clear()
  }
}
