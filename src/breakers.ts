/**
 * One opossum circuit breaker per Redis node. Every Redis call goes through `run(node, fn)`.
 *
 * Only faults of the node count (connection errors, timeouts, READONLY, LOADING, MASTERDOWN...);
 * a user's own outcome (WRONGTYPE, a refused condition) passes through without touching the
 * breaker's failure count. Timeouts are enforced here, per call, so a hung node never holds a
 * request longer than the call's own timeout.
 */
import { EventEmitter } from 'node:events'
import CircuitBreaker from 'opossum'
import type { Logger } from 'pino'
import type { Config } from './config.js'
import { GatewayError } from './errors.js'
import { isClusterRedirect, isNodeFault, RedisTimeoutError, withTimeout } from './redis/faults.js'

export type BreakerState = 'closed' | 'open' | 'half-open'

export interface BreakerStatus {
  node: string
  state: BreakerState
  /** When an open breaker lets one trial call through (ISO time), else null. */
  nextAttemptAt: string | null
  fires: number
  failures: number
  successes: number
  timeouts: number
  rejects: number
}

type Action = () => Promise<unknown>

/** Options of one call through a breaker. */
export interface RunOptions {
  /**
   * Asked when the call times out; resolves when the node still answers on another connection.
   * The call then waited for something that is not the node's own work (a WAIT for replicas that
   * cannot confirm, commands queued behind such a WAIT): the timeout reaches the caller but is not
   * counted against the node. A write that is not confirmed is not a node fault (issue 11, req. 4).
   */
  alive?: () => Promise<unknown>
}

/** RunOptions.alive for a node: PING on its control connection (never one a WAIT holds). */
export function pingsControl (pool: { control (ms: number): Promise<{ ping (): Promise<unknown> }> }, connectTimeoutMs: number): () => Promise<unknown> {
  return async () => await (await pool.control(connectTimeoutMs)).ping()
}

interface Entry { breaker: CircuitBreaker<[Action], unknown>; openedAt: number | null }

export class Breakers extends EventEmitter {
  private readonly entries = new Map<string, Entry>()
  /** Timeouts of calls whose node still answered (RunOptions.alive): not the node's failure. */
  private readonly excused = new WeakSet<object>()

  constructor (private readonly config: Config, private readonly log: Logger) { super() }

  /**
   * Runs `fn` against `node` through its breaker, with a timeout of `timeoutMs` (0: `fn` bounds
   * its own wait, e.g. a group-committed write, and rejects with RedisTimeoutError itself).
   * Rejects with GatewayError GW_ERR_BREAKER_OPEN (Retry-After = seconds to half-open) when open.
   */
  async run<T> (node: string, what: string, timeoutMs: number, fn: () => Promise<T>, opts: RunOptions = {}): Promise<T> {
    const entry = this.entry(node)
    const started = performance.now()
    try {
      const result = await entry.breaker.fire(async () => {
        try {
          return timeoutMs > 0 ? await withTimeout(`${what} on ${node}`, timeoutMs, fn) : await fn()
        } catch (err) {
          if (err instanceof RedisTimeoutError && opts.alive !== undefined && await this.answers(node, opts.alive)) this.excused.add(err)
          throw err
        }
      }) as T
      this.emit('call', node, what, (performance.now() - started) / 1000, true)
      return result
    } catch (err) {
      this.emit('call', node, what, (performance.now() - started) / 1000, false)
      if ((err as { code?: string }).code === 'EOPENBREAKER') throw this.openError(node, what, err)
      throw err
    }
  }

  private async answers (node: string, alive: () => Promise<unknown>): Promise<boolean> {
    try {
      await withTimeout(`PING on ${node}`, this.config.commandTimeoutMs, alive)
      return true
    } catch {
      return false
    }
  }

  /** Throws the 503 a request gets while `node`'s breaker is open. */
  assertClosed (node: string, what: string): void {
    if (this.isOpen(node)) throw this.openError(node, what)
  }

  private openError (node: string, what: string, cause?: unknown): GatewayError {
    return new GatewayError('GW_ERR_BREAKER_OPEN', `circuit breaker for a Redis node is open: ${what} refused`, {
      retryAfter: this.secondsToHalfOpen(node), cause
    })
  }

  /** True when calls to `node` would be refused right now. */
  isOpen (node: string): boolean {
    const e = this.entries.get(node)
    return e !== undefined && e.breaker.opened
  }

  secondsToHalfOpen (node: string): number {
    const e = this.entries.get(node)
    if (e?.openedAt == null) return 1
    const ms = e.openedAt + this.config.breaker.resetTimeout - Date.now()
    return Math.max(1, Math.ceil(ms / 1000))
  }

  status (): BreakerStatus[] {
    return [...this.entries.entries()].map(([node, e]) => {
      const s = e.breaker.stats
      const state: BreakerState = e.breaker.opened ? 'open' : e.breaker.halfOpen ? 'half-open' : 'closed'
      return {
        node,
        state,
        nextAttemptAt: state === 'open' && e.openedAt !== null ? new Date(e.openedAt + this.config.breaker.resetTimeout).toISOString() : null,
        fires: s.fires,
        failures: s.failures,
        successes: s.successes,
        timeouts: s.timeouts,
        rejects: s.rejects
      }
    }).sort((a, b) => a.node.localeCompare(b.node))
  }

  /** Drops breakers of nodes no longer in the topology. */
  retain (nodes: Set<string>): void {
    for (const [node, e] of this.entries) {
      if (!nodes.has(node)) { e.breaker.shutdown(); this.entries.delete(node) }
    }
  }

  close (): void { this.retain(new Set()) }

  private entry (node: string): Entry {
    let e = this.entries.get(node)
    if (e !== undefined) return e
    const breaker = new CircuitBreaker<[Action], unknown>(async (action: Action) => await action(), {
      timeout: false,
      errorThresholdPercentage: this.config.breaker.errorThresholdPercentage,
      volumeThreshold: this.config.breaker.volumeThreshold,
      resetTimeout: this.config.breaker.resetTimeout,
      rollingCountTimeout: this.config.breaker.rollingCountTimeout,
      // Neither is read here: with them opossum keeps every call's latency of the window (~100k
      // numbers at 10k calls/s), and sorts and sums them each second for a 'snapshot' event.
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      // true = "not a failure of the node": the user's own outcome.
      errorFilter: (err: unknown) => (typeof err === 'object' && err !== null && this.excused.has(err)) || !isNodeFault(err) || isClusterRedirect(err)
    })
    const entry: Entry = { breaker, openedAt: null }
    breaker.on('open', () => { entry.openedAt = Date.now(); this.changed(node, 'open') })
    breaker.on('halfOpen', () => this.changed(node, 'half-open'))
    breaker.on('close', () => { entry.openedAt = null; this.changed(node, 'closed') })
    this.entries.set(node, entry)
    e = entry
    return e
  }

  private changed (node: string, state: BreakerState): void {
    this.log.warn({ node, breaker: state }, 'circuit breaker state changed')
    this.emit('state', node, state)
  }
}
