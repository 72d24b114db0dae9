/**
 * Connections to Redis nodes and sentinels: a small pool per node, created on demand and closed
 * when the node leaves the topology.
 *
 * Every client is built so that a command is never sent late: no offline queue, no resend of
 * in-flight commands after a reconnect. A write that we reported as failed must not be applied
 * seconds later behind the client's back.
 */
import { Redis, type RedisOptions } from 'ioredis'
import type { Logger } from 'pino'
import { ClientSet, NotConnectedError } from './client-set.js'
import { translate, type NatMap } from './nat.js'
import { guardReplies, type GuardOptions } from './reply-guard.js'
import { tlsOptionsFor, type TlsSettings } from './tls.js'

export interface NodeAddress { host: string; port: number }

/** "host:port", the identity of a node everywhere in the gateway. */
export const nodeKey = (a: NodeAddress): string => `${a.host}:${a.port}`

export interface ClientAuth { username?: string; password?: string }

export interface ClientSettings extends ClientAuth {
  connectTimeoutMs: number
  db?: number
  /** Name shown by CLIENT LIST on the server. */
  name: string
  /** TLS for these connections (undefined: plain TCP). */
  tls?: TlsSettings
  /** Announced address → address to dial (REDIS_NAT_MAP); applied here, when connecting. */
  natMap?: NatMap
  /** Credentials of the control connections (REDIS_CONTROL_*). Default: the data credentials. */
  control?: ClientAuth
  /** Longest reply on a command endpoint connection (UPSTASH_MAX_REPLY_BYTES). Default: unbounded. */
  commandReplyBytes?: number
  /** Send READONLY on every connection (Cluster mode: a replica then serves reads of its own slots). */
  readOnly?: boolean
}

/** The address a connection to `addr` actually dials (after REDIS_NAT_MAP). */
export function dialAddress (addr: NodeAddress, s: Pick<ClientSettings, 'natMap'>): NodeAddress {
  return translate(s.natMap, addr)
}

/** Reconnect delay: exponential, capped at 2 s, with full jitter. */
export function reconnectDelay (attempt: number): number {
  return Math.floor(Math.random() * Math.min(2000, 50 * 2 ** Math.min(attempt, 10))) + 10
}

/**
 * ioredis options shared by every gateway connection. `addr` is the address as the sentinels
 * report it; the connection dials its REDIS_NAT_MAP translation, over TLS when configured, with
 * the certificate checked against the host actually dialed.
 */
export function clientOptions (addr: NodeAddress, s: ClientSettings): RedisOptions {
  const dial = dialAddress(addr, s)
  return {
    host: dial.host,
    port: dial.port,
    ...(s.tls !== undefined ? { tls: tlsOptionsFor(dial.host, s.tls) } : {}),
    username: s.username,
    password: s.password,
    db: s.db ?? 0,
    connectionName: s.name,
    connectTimeout: s.connectTimeoutMs,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    retryStrategy: reconnectDelay,
    ...(s.readOnly === true ? { readOnly: true } : {}),
    // A node that restarts empty must not answer reads before it has loaded (the pools check
    // with PING instead: see client-set.ts).
    enableReadyCheck: true
  }
}

/**
 * Disconnects a client for good. Its socket may still be closing when the server goes away too
 * (a node leaving the topology, or shutting down with the gateway): a TLS socket then reports the
 * server's alert as an 'error' that ioredis no longer listens to, which would crash the process.
 */
export function closeClient (c: Redis): void {
  const stream = c.stream as NodeJS.EventEmitter | undefined
  c.disconnect()
  stream?.on('error', () => { /* the connection is being dropped on purpose */ })
}

/** Sockets corked until the end of the current event-loop turn (see `corked`). */
const corkedThisTurn = new WeakSet<object>()

function uncorkTurn (s: { uncork(): void }): void {
  corkedThisTurn.delete(s)
  s.uncork()
}

/**
 * Runs `send`, which issues commands on `c`, with the socket corked until the end of this
 * event-loop turn (`setImmediate`): they leave in one write (one syscall) together with every
 * command that the other requests handled in the same turn send on this connection, as ioredis's
 * auto-pipelining would, without building a Pipeline. Under load many reads share one write
 * (a system call is most of a replica read's cost); alone, a read waits only for the turn to end.
 */
export function corked<T> (c: Redis, send: () => T): T {
  const s = c.stream
  if (!corkedThisTurn.has(s)) {
    corkedThisTurn.add(s)
    s.cork()
    setImmediate(uncorkTurn, s)
  }
  return send()
}

export { NotConnectedError }

/**
 * The connections of one node, in separate sets so that one kind of traffic cannot starve another
 * (bulkheads): `acquire` for /kv reads and writes (`dataClients`), `commands` for the command
 * endpoint (created on first use), `control` for the gateway's own checks (never blocked behind
 * a client's command or a pipelined WAIT), logged in as the control user.
 */
export class NodePool {
  readonly key: string
  private readonly kv: ClientSet
  private readonly ctl: ClientSet
  private cmd?: ClientSet
  private wr?: ClientSet
  private closed = false
  private readonly logError: (err: Error) => void

  /** The address connections dial (differs from `address` under REDIS_NAT_MAP). */
  readonly dialed: NodeAddress

  constructor (readonly address: NodeAddress, private readonly size: number, private readonly settings: ClientSettings, log: Logger) {
    this.key = nodeKey(address)
    this.dialed = dialAddress(address, settings)
    const via = nodeKey(this.dialed) === this.key ? {} : { via: nodeKey(this.dialed) }
    let lastLogged = 0
    this.logError = (err: Error) => {
      // A down node errors on every reconnect attempt: log at most once per 5 s per pool.
      const now = Date.now()
      if (now - lastLogged > 5000) {
        lastLogged = now
        log.warn({ node: this.key, ...via, err: err.message }, 'redis connection error')
      }
    }
    this.kv = this.set(size, settings, settings.name)
    this.ctl = this.set(1, { ...settings, ...(settings.control ?? {}) }, `${settings.name}-control`)
  }

  private set (n: number, s: ClientSettings, name: string, guard: GuardOptions = {}): ClientSet {
    const clients = Array.from({ length: n }, () => {
      const c = new Redis({ ...clientOptions(this.address, { ...s, name }), enableReadyCheck: false })
      c.on('error', this.logError)
      guardReplies(c, guard)
      return c
    })
    return new ClientSet(this.key, clients, s.connectTimeoutMs)
  }

  /** A /kv connection (round-robin); throws NotConnectedError when none is ready. */
  pick (): Redis {
    return this.kv.pick()
  }

  /**
   * A /kv connection. A pool never connected yet (a node just discovered) is waited for, so the
   * first calls to a new master do not count as its failures; a pool that lost its connections
   * fails at once (the caller's timeout bounds the wait either way).
   */
  async acquire (timeoutMs: number): Promise<Redis> {
    return await this.kv.acquire(timeoutMs)
  }

  /**
   * A connection for /kv writes (REDIS_POOL_SIZE, opened on first use). Their pipelined WAIT blocks
   * the connection until replicas confirm: reads of the master never queue behind it (partition
   * suite, e1: replicas that cannot ack made every strong read of a healthy master time out).
   */
  async writes (timeoutMs: number): Promise<Redis> {
    if (this.closed) throw new NotConnectedError(this.key)
    this.wr ??= this.set(this.size, this.settings, `${this.settings.name}-writes`)
    return await this.wr.acquire(timeoutMs)
  }

  /**
   * A connection of the command endpoint's own set (REDIS_POOL_SIZE, opened on first use), whose
   * replies are bounded (`commandReplyBytes`): a client's command never holds a /kv connection.
   */
  async commands (timeoutMs: number): Promise<Redis> {
    if (this.closed) throw new NotConnectedError(this.key)
    this.cmd ??= this.set(this.size, this.settings, `${this.settings.name}-commands`, { maxReplyBytes: this.settings.commandReplyBytes })
    return await this.cmd.acquire(timeoutMs)
  }

  /** Closes a command connection and opens another (a command timed out on it: it may hold the connection for long). */
  replaceCommandClient (c: Redis): void {
    this.cmd?.replace(c)
  }

  /** The control connection (topology checks, COMMAND, SCRIPT KILL), waited for up to `timeoutMs`. */
  async control (timeoutMs: number): Promise<Redis> {
    return await this.ctl.acquire(timeoutMs, true)
  }

  /** The /kv connections: reads and writes go through these (the near-cache tracks them). */
  get dataClients (): readonly Redis[] {
    return this.kv.clients
  }

  /** True when a /kv connection is ready: reads and writes can be sent now. */
  get ready (): boolean {
    return this.kv.ready
  }

  close (): void {
    this.closed = true
    for (const set of [this.kv, this.ctl, this.cmd, this.wr]) set?.close(closeClient)
  }
}

/** All node pools, keyed by "host:port". */
export class Connections {
  private readonly pools = new Map<string, NodePool>()
  private closed = false

  constructor (private readonly size: number, private readonly settings: ClientSettings, private readonly log: Logger) {}

  /** The address a node reported at `addr` is reached at (REDIS_NAT_MAP applied), e.g. for display. */
  dialAddress (addr: NodeAddress): NodeAddress {
    return dialAddress(addr, this.settings)
  }

  /**
   * A connection of its own to `addr` with the pools' settings (TLS, NAT map, no offline queue),
   * e.g. a subscriber, logged in as the data user or (`as: 'control'`) the control user. The
   * caller closes it (closeClient).
   */
  newClient (addr: NodeAddress, name: string, extra: RedisOptions = {}, as: 'data' | 'control' = 'data'): Redis {
    const auth = as === 'control' ? this.settings.control ?? {} : {}
    // ioredis's ready check sends INFO, which the data user may not run.
    const c = new Redis({ ...clientOptions(addr, { ...this.settings, ...auth, name }), ...(as === 'data' ? { enableReadyCheck: false } : {}), ...extra })
    guardReplies(c)
    return c
  }

  /** The pool of `addr` if it exists (never creates one). */
  existing (addr: NodeAddress): NodePool | undefined {
    return this.pools.get(nodeKey(addr))
  }

  get (addr: NodeAddress): NodePool {
    const key = nodeKey(addr)
    // A refresh or request still running at shutdown must not open connections nobody closes.
    if (this.closed) throw new NotConnectedError(key)
    let pool = this.pools.get(key)
    if (pool === undefined) {
      pool = new NodePool(addr, this.size, this.settings, this.log)
      this.pools.set(key, pool)
    }
    return pool
  }

  /** Closes the pools of nodes that are no longer part of the topology. */
  retain (keys: Set<string>): void {
    for (const [key, pool] of this.pools) {
      if (!keys.has(key)) {
        pool.close()
        this.pools.delete(key)
      }
    }
  }

  closeAll (): void {
    this.closed = true
    this.retain(new Set())
  }
}
