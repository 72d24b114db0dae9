/**
 * Prometheus metrics (prom-client). Metrics listen to what the services emit and to request
 * completion; they hold no logic of their own.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { Breakers } from './breakers.js'
import type { NearCache } from './cache/near-cache.js'
import type { Topology } from './topology.js'

const BREAKER_STATE = { closed: 0, 'half-open': 1, open: 2 } as const

export class Metrics {
  readonly registry = new Registry()
  /**
   * Always equal to the latency histogram's `_count` for the same labels, so it is read from there
   * when scraped instead of being counted a second time on every request.
   */
  readonly requests: Counter<'route' | 'method' | 'status' | 'served_by'> = new Counter({
    name: 'skv_http_requests_total', help: 'HTTP requests by route, method, status and serving role', labelNames: ['route', 'method', 'status', 'served_by'], registers: [this.registry],
    collect: async () => {
      // get() reads the histogram at once (no collect of its own): the same moment as its own exposition.
      const { values } = await this.requestSeconds.get()
      this.requests.reset()
      for (const v of values) if (v.metricName === 'skv_http_request_duration_seconds_count') this.requests.inc(v.labels, v.value)
    }
  })
  readonly requestSeconds = new Histogram({
    name: 'skv_http_request_duration_seconds', help: 'HTTP request latency', labelNames: ['route', 'method', 'status', 'served_by'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [this.registry]
  })
  readonly redisSeconds = new Histogram({
    name: 'skv_redis_command_duration_seconds', help: 'Redis call latency per node and kind (read, write, INFO...)', labelNames: ['node', 'op', 'outcome'],
    buckets: [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5], registers: [this.registry]
  })
  readonly failovers = new Counter({ name: 'skv_failovers_total', help: 'Master changes seen by this gateway', registers: [this.registry] })
  readonly stalePromotions = new Counter({ name: 'skv_stale_promotions_total', help: 'Masters followed whose replication history lacks the last acknowledged write (acknowledged writes may be lost)', registers: [this.registry] })
  readonly rateLimited = new Counter({ name: 'skv_rate_limit_rejections_total', help: 'Requests refused by the rate limiter', registers: [this.registry] })

  constructor (topology: Topology, breakers: Breakers, cache?: NearCache) {
    if (cache !== undefined) this.nearCacheMetrics(cache)
    collectDefaultMetrics({ register: this.registry, prefix: 'skv_' })
    topology.on('master-change', (s: { lastFailover: unknown }) => { if (s.lastFailover !== null) this.failovers.inc() })
    topology.on('stale-promotion', () => this.stalePromotions.inc())
    breakers.on('call', (node: string, op: string, seconds: number, ok: boolean) => {
      this.redisSeconds.observe({ node, op, outcome: ok ? 'ok' : 'error' }, seconds)
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

  /** Records one finished HTTP request. */
  observeRequest (route: string, method: string, status: number, servedBy: string, seconds: number): void {
    // skv_http_requests_total follows from this (see `requests`).
    this.requestSeconds.observe({ route, method, status: String(status), served_by: servedBy }, seconds)
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
