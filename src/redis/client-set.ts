/**
 * A fixed set of connections to one node, used round-robin, that heals by itself.
 *
 * A connection is handed out only once it answered PING after connecting (instead of ioredis's
 * ready check, which sends INFO: an `@dangerous` command the data user may not run). PING fails
 * while the node loads its data set (LOADING: probed again shortly) or runs a busy script (BUSY);
 * a probe that fails otherwise or is not answered in time reconnects. A watchdog reconnects
 * connections stuck half-open (connected, never usable) for longer than that, so a pool never
 * stays without a ready connection to a node that answers again.
 */
import type { Redis } from 'ioredis'

/** How often the watchdog looks at the set. */
const WATCHDOG_MS = 1000
/** LOADING: probe again after this long. */
const LOADING_RETRY_MS = 100

/** Raised when no connection of a node's pool is ready. */
export class NotConnectedError extends Error {
  readonly code = 'ENOTCONNECTED'
  constructor (key: string) {
    super(`no ready connection to ${key}`)
    this.name = 'NotConnectedError'
  }
}

export class ClientSet {
  private readonly usable = new Set<Redis>()
  /** When each connection last started connecting without becoming usable since. */
  private readonly since = new Map<Redis, number>()
  private readonly waiters = new Set<() => void>()
  private readonly watchdog: NodeJS.Timeout
  private next = 0
  private closed = false
  /** Set once a connection has been usable: from then on, none usable = node fault. */
  private everUsable = false

  /**
   * `clients` are created with `enableReadyCheck: false`; `probeTimeoutMs` bounds the PING probe
   * and the time a connection may stay connected without becoming usable.
   */
  constructor (readonly key: string, readonly clients: readonly Redis[], private readonly probeTimeoutMs: number) {
    const now = Date.now()
    for (const c of clients) {
      this.since.set(c, now)
      c.on('ready', () => this.probe(c, c.stream))
      c.on('close', () => { this.usable.delete(c); this.since.set(c, Date.now()) })
    }
    this.watchdog = setInterval(() => this.watch(), WATCHDOG_MS)
    this.watchdog.unref()
  }

  /** A usable connection (round-robin); throws NotConnectedError when none is. */
  pick (): Redis {
    const n = this.clients.length
    for (let i = 0; i < n; i++) {
      const c = this.clients[(this.next++) % n]!
      if (c.status === 'ready' && this.usable.has(c)) return c
    }
    throw new NotConnectedError(this.key)
  }

  /**
   * A usable connection. A set never usable yet (a node just discovered) is waited for, up to
   * `timeoutMs`, so the first calls to a new node do not count as its failures; a set that lost
   * its connections fails at once, unless `wait` (the control connection: a check waits for it
   * to come back rather than fail).
   */
  async acquire (timeoutMs: number, wait = false): Promise<Redis> {
    if (this.ready || (this.everUsable && !wait) || this.closed) return this.pick()
    await new Promise<void>(resolve => {
      const done = (): void => { clearTimeout(timer); this.waiters.delete(done); resolve() }
      const timer = setTimeout(done, timeoutMs)
      this.waiters.add(done)
    })
    return this.pick()
  }

  /** True when at least one connection is usable. */
  get ready (): boolean {
    for (const c of this.usable) if (c.status === 'ready') return true
    return false
  }

  /** Closes `c`'s connection and opens a new one (e.g. after a command timed out on it). */
  replace (c: Redis): void {
    this.usable.delete(c)
    if (!this.closed && c.status !== 'end') c.disconnect(true)
  }

  close (onEach: (c: Redis) => void): void {
    this.closed = true
    clearInterval(this.watchdog)
    for (const w of [...this.waiters]) w()
    for (const c of this.clients) onEach(c)
  }

  private probe (c: Redis, stream: object): void {
    let settled = false
    const current = (): boolean => !this.closed && c.stream === stream && c.status === 'ready'
    const timer = setTimeout(() => {
      settled = true
      if (current()) c.disconnect(true)
    }, this.probeTimeoutMs)
    timer.unref()
    c.ping().then(() => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (!current()) return
      this.usable.add(c)
      this.everUsable = true
      for (const w of [...this.waiters]) w()
    }, (err: Error) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (!current()) return
      // Loading its data set: not usable yet, but nothing to reconnect for.
      if (/^LOADING\b/.test(err.message)) setTimeout(() => { if (current()) this.probe(c, stream) }, LOADING_RETRY_MS).unref()
      else c.disconnect(true)
    })
  }

  /** Reconnects connections connected for too long without becoming usable (a handshake nobody answers). */
  private watch (): void {
    const now = Date.now()
    for (const c of this.clients) {
      if (this.usable.has(c) || c.status === 'end' || c.status === 'reconnecting' || c.status === 'wait') continue
      if (now - (this.since.get(c) ?? now) > 2 * this.probeTimeoutMs + WATCHDOG_MS) {
        this.since.set(c, now)
        c.disconnect(true)
      }
    }
  }
}
