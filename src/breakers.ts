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
import { isNodeFault, withTimeout } from './redis/faults.js'

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

interface Entry { breaker: CircuitBreaker<[Action], unknown>; openedAt: number | null }

export class Breakers extends EventEmitter {
  private readonly entries = new Map<string, Entry>()

  constructor (private readonly config: Config, private readonly log: Logger) { super() }

  /**
   * Runs `fn` against `node` through its breaker, with a timeout of `timeoutMs`.
   * Rejects with GatewayError GW_ERR_BREAKER_OPEN (Retry-After = seconds to half-open) when open.
   */
  async run<T> (node: string, what: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
    const entry = this.entry(node)
    const started = performance.now()
    try {
      const result = await entry.breaker.fire(async () => await withTimeout(`${what} on ${node}`, timeoutMs, fn)) as T
      this.emit('call', node, what, (performance.now() - started) / 1000, true)
      return result
    } catch (err) {
      this.emit('call', node, what, (performance.now() - started) / 1000, false)
      if ((err as { code?: string }).code === 'EOPENBREAKER') throw this.openError(node, what, err)
      throw err
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
      // true = "not a failure of the node": the user's own outcome.
      errorFilter: (err: unknown) => !isNodeFault(err)
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
