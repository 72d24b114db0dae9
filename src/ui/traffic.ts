/**
 * Traffic for the operations page, sampled from the Prometheus registry (src/metrics.ts) once a
 * second: no hook on the request path. Each sample is the difference with the previous reading
 * (histogram bucket deltas), kept for TRAFFIC_WINDOW_S seconds in a ring, so rates and p50/p99
 * come from what happened in that second.
 */
import type { Registry } from 'prom-client'
import { bucketDelta, quantile, type BucketCounts } from './histogram.js'

/** Seconds of traffic kept (the page's charts span this). */
export const TRAFFIC_WINDOW_S = 300
/** Routes left out of the traffic: the page's own (an event stream lasts minutes). */
const OWN_ROUTE = /^\/ui(\/|$)/

const HTTP = 'skv_http_request_duration_seconds'
const REDIS = 'skv_redis_command_duration_seconds'
const HITS = 'skv_near_cache_hits_total'
const MISSES = 'skv_near_cache_misses_total'
const REJECTED = 'skv_rate_limit_rejections_total'

/** One route and serving role in one sample. Latencies in ms (null: no request). */
export interface RouteTraffic { route: string; role: string; count: number; p50: number | null; p99: number | null }

/** What happened during one sample period. */
export interface TrafficPoint {
  /** End of the period (ms since the epoch). */
  t: number
  /** Length of the period in seconds (about 1; longer when the process stalled). */
  dt: number
  routes: RouteTraffic[]
  /** Error answers (HTTP status >= 400) by status. */
  errors: Record<string, number>
  /** Writes to a master, from sending to its acknowledgement (WAIT included). Latencies in ms. */
  writes: { count: number; p50: number | null; p99: number | null }
  /** Reads served per Redis node (`host:port`). */
  reads: Record<string, number>
  cache: { hits: number; misses: number }
  rateLimited: number
}

interface MetricValue { value: number; labels: Record<string, string | number | undefined>; metricName?: string }

/** Cumulative readings of the metrics the page uses. */
interface Reading {
  http: Map<string, BucketCounts>
  errors: Map<string, number>
  writes: BucketCounts | undefined
  reads: Map<string, number>
  hits: number
  misses: number
  rejected: number
}

export class TrafficSampler {
  private readonly ring: Array<TrafficPoint | undefined> = new Array(TRAFFIC_WINDOW_S)
  private count = 0
  private last: { at: number; reading: Reading } | null = null

  constructor (private readonly registry: Registry) {}

  /** Reads the registry; returns what happened since the previous call (null on the first). */
  async sample (now = Date.now()): Promise<TrafficPoint | null> {
    const reading = await this.read()
    const prev = this.last
    this.last = { at: now, reading }
    if (prev === null) return null
    const point = diff(prev.reading, reading, now, Math.max(0.001, (now - prev.at) / 1000))
    this.ring[this.count++ % TRAFFIC_WINDOW_S] = point
    return point
  }

  /** The samples kept, oldest first. */
  points (): TrafficPoint[] {
    const out: TrafficPoint[] = []
    for (let i = Math.max(0, this.count - TRAFFIC_WINDOW_S); i < this.count; i++) out.push(this.ring[i % TRAFFIC_WINDOW_S]!)
    return out
  }

  /** Reads served per node over the last `seconds` seconds of samples. */
  readsOver (seconds: number, now = Date.now()): Map<string, number> {
    const out = new Map<string, number>()
    for (const p of this.points()) {
      if (p.t <= now - seconds * 1000) continue
      for (const [node, n] of Object.entries(p.reads)) out.set(node, (out.get(node) ?? 0) + n)
    }
    return out
  }

  private async read (): Promise<Reading> {
    const http = await this.values(HTTP)
    const redis = await this.values(REDIS)
    const errors = new Map<string, number>()
    for (const v of http) {
      if (v.metricName !== `${HTTP}_count` || Number(v.labels.status) < 400) continue
      const status = String(v.labels.status)
      errors.set(status, (errors.get(status) ?? 0) + v.value)
    }
    const reads = new Map<string, number>()
    for (const v of redis) {
      if (v.metricName === `${REDIS}_count` && v.labels.op === 'read') reads.set(String(v.labels.node), (reads.get(String(v.labels.node)) ?? 0) + v.value)
    }
    return {
      http: bucketsBy(http, l => OWN_ROUTE.test(String(l.route)) ? null : `${l.method ?? ''} ${l.route ?? ''}\t${l.served_by ?? 'none'}`),
      errors,
      writes: bucketsBy(redis, l => l.op === 'write' ? 'write' : null).get('write'),
      reads,
      hits: await this.total(HITS),
      misses: await this.total(MISSES),
      rejected: await this.total(REJECTED)
    }
  }

  /** A metric's values now (none when the metric is not registered: it may be renamed or off). */
  private async values (name: string): Promise<MetricValue[]> {
    const m = this.registry.getSingleMetric(name)
    if (m === undefined) return []
    return (await m.get()).values as MetricValue[]
  }

  private async total (name: string): Promise<number> {
    return (await this.values(name)).reduce((sum, v) => sum + v.value, 0)
  }
}

/** Cumulative bucket counts of a histogram's `_bucket` values, summed by `keyOf` (null: left out). */
function bucketsBy (values: MetricValue[], keyOf: (labels: MetricValue['labels']) => string | null): Map<string, BucketCounts> {
  const out = new Map<string, BucketCounts>()
  const bounds: number[] = []
  const index = new Map<string, number>()
  for (const v of values) {
    if (v.metricName?.endsWith('_bucket') !== true) continue
    const le = String(v.labels.le)
    let i = index.get(le)
    if (i === undefined) {
      i = bounds.length
      index.set(le, i)
      bounds.push(le === '+Inf' ? Infinity : Number(le))
    }
    const key = keyOf(v.labels)
    if (key === null) continue
    let h = out.get(key)
    if (h === undefined) { h = { bounds, counts: [] }; out.set(key, h) }
    h.counts[i] = (h.counts[i] ?? 0) + v.value
  }
  for (const h of out.values()) for (let i = 0; i < bounds.length; i++) h.counts[i] ??= 0
  return out
}

const ms = (seconds: number | null): number | null => seconds === null ? null : Math.round(seconds * 100_000) / 100
const grew = (cur: number, prev: number): number => cur >= prev ? cur - prev : cur

function diff (prev: Reading, cur: Reading, t: number, dt: number): TrafficPoint {
  const routes: RouteTraffic[] = []
  for (const [key, h] of cur.http) {
    const d = bucketDelta(h, prev.http.get(key))
    const count = d.counts[d.counts.length - 1] ?? 0
    if (count <= 0) continue
    const [route = '', role = 'none'] = key.split('\t')
    routes.push({ route, role, count, p50: ms(quantile(d, 0.5)), p99: ms(quantile(d, 0.99)) })
  }
  const errors: Record<string, number> = {}
  for (const [status, n] of cur.errors) {
    const d = grew(n, prev.errors.get(status) ?? 0)
    if (d > 0) errors[status] = d
  }
  const reads: Record<string, number> = {}
  for (const [node, n] of cur.reads) {
    const d = grew(n, prev.reads.get(node) ?? 0)
    if (d > 0) reads[node] = d
  }
  const w = cur.writes === undefined ? undefined : bucketDelta(cur.writes, prev.writes)
  const wCount = w === undefined ? 0 : w.counts[w.counts.length - 1] ?? 0
  return {
    t,
    dt,
    routes,
    errors,
    writes: { count: wCount, p50: w === undefined ? null : ms(quantile(w, 0.5)), p99: w === undefined ? null : ms(quantile(w, 0.99)) },
    reads,
    cache: { hits: grew(cur.hits, prev.hits), misses: grew(cur.misses, prev.misses) },
    rateLimited: grew(cur.rejected, prev.rejected)
  }
}
