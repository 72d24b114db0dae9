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
import { translate, type NatMap } from './nat.js'
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
    // A node that restarts empty must not answer reads before it has loaded.
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

/**
 * Runs `send`, which issues commands on `c`, with the socket corked: they leave in one write
 * (one syscall), as a pipeline would, without building an ioredis Pipeline.
 */
export function corked<T> (c: Redis, send: () => T): T {
  const s = c.stream
  s.cork()
  try {
    return send()
  } finally {
    s.uncork()
  }
}

/** Raised when no connection of a node's pool is ready. */
export class NotConnectedError extends Error {
  readonly code = 'ENOTCONNECTED'
  constructor (key: string) {
    super(`no ready connection to ${key}`)
    this.name = 'NotConnectedError'
  }
}

/** A fixed set of connections to one node, used round-robin. */
export class NodePool {
  readonly key: string
  private readonly clients: Redis[]
  private next = 0
  private readonly size: number
  /** Set once any connection of the pool has been ready: from then on, none ready = node fault. */
  private everReady = false

  /** The address connections dial (differs from `address` under REDIS_NAT_MAP). */
  readonly dialed: NodeAddress

  constructor (readonly address: NodeAddress, size: number, settings: ClientSettings, log: Logger) {
    this.key = nodeKey(address)
    this.dialed = dialAddress(address, settings)
    const via = nodeKey(this.dialed) === this.key ? {} : { via: nodeKey(this.dialed) }
    let lastLogged = 0
    this.size = size
    // One more connection than the pool size: the control connection (INFO, PING), never
    // blocked behind a pipelined WAIT of the writes.
    this.clients = Array.from({ length: size + 1 }, () => {
      const c = new Redis(clientOptions(address, settings))
      c.on('ready', () => { this.everReady = true })
      c.on('error', (err: Error) => {
        // A down node errors on every reconnect attempt: log at most once per 5 s per pool.
        const now = Date.now()
        if (now - lastLogged > 5000) {
          lastLogged = now
          log.warn({ node: this.key, ...via, err: err.message }, 'redis connection error')
        }
      })
      return c
    })
  }

  /** A ready connection (round-robin); throws NotConnectedError when none is ready. */
  pick (): Redis {
    for (let i = 0; i < this.size; i++) {
      const c = this.clients[(this.next++) % this.size]!
      if (c.status === 'ready') return c
    }
    throw new NotConnectedError(this.key)
  }

  /**
   * A ready connection. A pool that was never connected yet (a node just discovered) is waited
   * for, so the first calls to a new master do not count as its failures; a pool that lost its
   * connections fails at once (the caller's timeout bounds the wait either way).
   */
  async acquire (timeoutMs: number): Promise<Redis> {
    if (this.everReady || this.ready) return this.pick()
    await new Promise<void>(resolve => {
      const done = (): void => {
        clearTimeout(timer)
        for (const c of this.clients) c.off('ready', done)
        resolve()
      }
      const timer = setTimeout(done, timeoutMs)
      for (const c of this.clients) c.once('ready', done)
    })
    return this.pick()
  }

  /** The control connection (topology checks), or a data connection while it is not ready. */
  async control (timeoutMs: number): Promise<Redis> {
    const c = this.clients[this.size]!
    return c.status === 'ready' ? c : await this.acquire(timeoutMs)
  }

  /** The data connections (not the control connection): reads and writes go through these. */
  get dataClients (): readonly Redis[] {
    return this.clients.slice(0, this.size)
  }

  /** True when at least one connection is ready. */
  get ready (): boolean {
    return this.clients.some(c => c.status === 'ready')
  }

  close (): void {
    for (const c of this.clients) closeClient(c)
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
   * A connection of its own to `addr` with the pools' settings (auth, TLS, NAT map, no offline
   * queue), e.g. a subscriber. The caller closes it (closeClient).
   */
  newClient (addr: NodeAddress, name: string, extra: RedisOptions = {}): Redis {
    return new Redis({ ...clientOptions(addr, { ...this.settings, name }), ...extra })
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
