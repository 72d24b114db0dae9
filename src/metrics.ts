/**
 * Prometheus metrics (prom-client). Metrics listen to what the services emit and to request
 * completion; they hold no logic of their own. The two histograms observed on every request and
 * every Redis call are plain counts updated in place (src/metrics-histogram.ts), handed to
 * prom-client when scraped.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { Breakers } from './breakers.js'
import type { NearCache } from './cache/near-cache.js'
import { CountOf, FastHistogram, type Series } from './metrics-histogram.js'
import type { Topology } from './topology.js'

/** x-served-by values as a small number (part of a series' numeric key). */
const SERVED_BY: Readonly<Record<string, number>> = { none: 0, replica: 1, master: 2 }

const BREAKER_STATE = { closed: 0, 'half-open': 1, open: 2 } as const

export class Metrics {
  readonly registry = new Registry()
  // Registered first: the exposition keeps the order of registration.
  readonly requests = new CountOf(this.registry, 'skv_http_requests_total', 'HTTP requests by route, method, status and serving role', (): FastHistogram => this.requestSeconds)
  readonly requestSeconds = new FastHistogram(this.registry, 'skv_http_request_duration_seconds', 'HTTP request latency',
    ['route', 'method', 'status', 'served_by'], [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5])

  readonly redisSeconds = new FastHistogram(this.registry, 'skv_redis_command_duration_seconds', 'Redis call latency per node and kind (read, write, INFO...)',
    ['node', 'op', 'outcome'], [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5])

  /** route -> method -> status * 4 + served-by -> series: no string is built per request. */
  private readonly requestSeries = new Map<string, Map<string, Map<number, Series>>>()
  private readonly oddSeries = new Map<string, Series>()
  /** node -> op -> [ok, error]. */
  private readonly redisSeries = new Map<string, Map<string, [Series, Series]>>()
  readonly failovers = new Counter({ name: 'skv_failovers_total', help: 'Master changes seen by this gateway', registers: [this.registry] })
  readonly stalePromotions = new Counter({ name: 'skv_stale_promotions_total', help: 'Masters followed whose replication history lacks the last acknowledged write (acknowledged writes may be lost)', registers: [this.registry] })
  readonly rateLimited = new Counter({ name: 'skv_rate_limit_rejections_total', help: 'Requests refused by the rate limiter', registers: [this.registry] })

  constructor (topology: Topology, breakers: Breakers, cache?: NearCache) {
    if (cache !== undefined) this.nearCacheMetrics(cache)
    collectDefaultMetrics({ register: this.registry, prefix: 'skv_' })
    topology.on('master-change', (s: { lastFailover: unknown }) => { if (s.lastFailover !== null) this.failovers.inc() })
    topology.on('stale-promotion', () => this.stalePromotions.inc())
    breakers.on('call', (node: string, op: string, seconds: number, ok: boolean) => {
      let byOp = this.redisSeries.get(node)
      if (byOp === undefined) this.redisSeries.set(node, byOp = new Map())
      let pair = byOp.get(op)
      if (pair === undefined) {
        byOp.set(op, pair = [this.redisSeconds.series({ node, op, outcome: 'ok' }), this.redisSeconds.series({ node, op, outcome: 'error' })])
      }
      pair[ok ? 0 : 1].observe(seconds)
    })
    new Gauge({
      name: 'skv_breaker_state', help: 'Circuit breaker per node: 0 closed, 1 half-open, 2 open', labelNames: ['node'], registers: [this.registry],
      collect () { this.reset(); for (const b of breakers.status()) this.set({ node: b.node }, BREAKER_STATE[b.state]) }
    })
    new Gauge({
      name: 'skv_replica_lag_bytes', help: 'Replication offset bytes behind the master, per replica', labelNames: ['replica'], registers: [this.registry],
      collect () { this.reset(); for (const r of topology.snapshot.replicas) if (r.lagBytes !== null) this.set({ replica: r.key }, r.lagBytes) }
    })
    new Gauge({
      name: 'skv_replica_healthy', help: '1 when the replica may serve reads', labelNames: ['replica'], registers: [this.registry],
      collect () { this.reset(); for (const r of topology.snapshot.replicas) this.set({ replica: r.key }, r.healthy && !breakers.isOpen(r.key) ? 1 : 0) }
    })
  }

  /** Records one finished HTTP request (skv_http_requests_total is its series' count). */
  observeRequest (route: string, method: string, status: number, servedBy: string, seconds: number): void {
    let byMethod = this.requestSeries.get(route)
    if (byMethod === undefined) this.requestSeries.set(route, byMethod = new Map())
    let byKey = byMethod.get(method)
    if (byKey === undefined) byMethod.set(method, byKey = new Map())
    const role = SERVED_BY[servedBy]
    if (role === undefined) return this.observeOdd(route, method, status, servedBy, seconds)
    let series = byKey.get(status * 4 + role)
    if (series === undefined) byKey.set(status * 4 + role, series = this.requestSeconds.series({ route, method, status: String(status), served_by: servedBy }))
    series.observe(seconds)
  }

  /** An x-served-by outside the known values (never expected): a string key, built per call. */
  private observeOdd (route: string, method: string, status: number, servedBy: string, seconds: number): void {
    const key = JSON.stringify([route, method, status, servedBy])
    let series = this.oddSeries.get(key)
    if (series === undefined) this.oddSeries.set(key, series = this.requestSeconds.series({ route, method, status: String(status), served_by: servedBy }))
    series.observe(seconds)
  }

  /** Near-cache counters and size, read from the cache when scraped. */
  private nearCacheMetrics (cache: NearCache): void {
    const registers = [this.registry]
    const counter = (name: string, help: string, read: () => number): void => {
      new Counter({ name, help, registers, collect () { this.reset(); this.inc(read()) } })
    }
    counter('skv_near_cache_hits_total', 'GETs answered from the near-cache', () => cache.stats.hits)
    counter('skv_near_cache_misses_total', 'Cacheable GETs that had to read a replica', () => cache.stats.misses)
    counter('skv_near_cache_evictions_total', 'Entries evicted to stay within NEAR_CACHE_MAX_BYTES', () => cache.stats.evictions)
    counter('skv_near_cache_invalidations_total', 'Keys invalidated (by the replicas, or by a write through this gateway)', () => cache.stats.invalidations)
    new Counter({
      name: 'skv_near_cache_flushes_total', help: 'Whole-cache flushes, by reason', labelNames: ['reason'], registers,
      collect () { this.reset(); for (const [reason, n] of Object.entries(cache.stats.flushes)) this.inc({ reason }, n) }
    })
    new Gauge({ name: 'skv_near_cache_entries', help: 'Entries in the near-cache', registers, collect () { this.set(cache.stats.entries) } })
    new Gauge({ name: 'skv_near_cache_bytes', help: 'Memory charged to the near-cache (keys, values, overhead)', registers, collect () { this.set(cache.stats.bytes) } })
  }
}
