// /metrics exposes the same series as before the hot-path counters (src/metrics-histogram.ts): every
// family with its type and label names, histograms in prom-client's layout (le first, cumulative
// buckets, +Inf = _count), and the numbers move by exactly what the requests did.
import t from 'tap'
import { startInProcess } from './helpers/gateway.js'
import { topologyFor } from './helpers/topology.js'

const topo = await topologyFor(t)

/** The gateway's own families: type and label names (default process metrics are checked apart). */
const FAMILIES: Record<string, { type: string; labels: string[] }> = {
  skv_http_requests_total: { type: 'counter', labels: ['route', 'method', 'status', 'served_by'] },
  skv_http_request_duration_seconds: { type: 'histogram', labels: ['le', 'route', 'method', 'status', 'served_by'] },
  skv_redis_command_duration_seconds: { type: 'histogram', labels: ['le', 'node', 'op', 'outcome'] },
  skv_failovers_total: { type: 'counter', labels: [] },
  skv_stale_promotions_total: { type: 'counter', labels: [] },
  skv_rate_limit_rejections_total: { type: 'counter', labels: [] },
  skv_near_cache_hits_total: { type: 'counter', labels: [] },
  skv_near_cache_misses_total: { type: 'counter', labels: [] },
  skv_near_cache_evictions_total: { type: 'counter', labels: [] },
  skv_near_cache_invalidations_total: { type: 'counter', labels: [] },
  skv_near_cache_flushes_total: { type: 'counter', labels: ['reason'] },
  skv_near_cache_entries: { type: 'gauge', labels: [] },
  skv_near_cache_bytes: { type: 'gauge', labels: [] },
  skv_breaker_state: { type: 'gauge', labels: ['node'] },
  skv_replica_lag_bytes: { type: 'gauge', labels: ['replica'] },
  skv_replica_healthy: { type: 'gauge', labels: ['replica'] }
}
const HTTP_BUCKETS = ['0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '+Inf']
const REDIS_BUCKETS = ['0.0002', '0.0005', '0.001', '0.0025', '0.005', '0.01', '0.05', '0.1', '0.5', '1', '2.5', '+Inf']

interface Sample { name: string; labels: Array<[string, string]>; value: number }

function parse (text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>()
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (type !== null) types.set(type[1]!, type[2]!)
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (m === null) continue
    const labels = [...(m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map(x => [x[1]!, x[2]!] as [string, string])
    samples.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return { types, samples }
}

/** Sum of the samples of `name` whose labels include `want`. */
function value (s: Sample[], name: string, want: Record<string, string>): number {
  return s.filter(x => x.name === name && Object.entries(want).every(([k, v]) => x.labels.some(([lk, lv]) => lk === k && lv === v)))
    .reduce((sum, x) => sum + x.value, 0)
}

t.test('same families, types, labels and histogram layout; numbers move with the requests', async t => {
  const gw = await startInProcess(t, topo)
  const scrape = async (): Promise<ReturnType<typeof parse>> => parse(await (await fetch(`${gw.url}/metrics`)).text())
  const put = async (): Promise<number> => (await fetch(`${gw.url}/kv/metrics%3Ak`, { method: 'PUT', body: 'v' })).status
  t.ok([200, 201].includes(await put()))
  // The key is read once (miss, fills the near-cache), so the counted GETs below are hits.
  await (await fetch(`${gw.url}/kv/metrics%3Ak`)).arrayBuffer()
  const before = await scrape()

  t.equal(await put(), 200)
  for (let i = 0; i < 3; i++) t.equal((await fetch(`${gw.url}/kv/metrics%3Ak`)).status, 200)
  t.equal((await fetch(`${gw.url}/kv/metrics%3Anone`)).status, 404)
  t.equal((await fetch(`${gw.url}/nowhere`)).status, 404)
  const after = await scrape()

  for (const [name, f] of Object.entries(FAMILIES)) {
    t.equal(after.types.get(name), f.type, `${name}: ${f.type}`)
    const samples = after.samples.filter(s => s.name === name || s.name.startsWith(`${name}_`))
    for (const s of samples) t.same(s.labels.map(([k]) => k).filter(k => s.name.endsWith('_bucket') || k !== 'le'), s.name.endsWith('_bucket') ? f.labels : f.labels.filter(l => l !== 'le'), `${s.name} labels`)
  }
  for (const name of ['skv_process_resident_memory_bytes', 'skv_nodejs_eventloop_lag_seconds', 'skv_nodejs_gc_duration_seconds']) t.ok(after.types.has(name), `default metric ${name}`)

  const http = (s: Sample[], labels: Record<string, string>): number => value(s, 'skv_http_requests_total', labels)
  const delta = (labels: Record<string, string>): number => http(after.samples, labels) - http(before.samples, labels)
  t.equal(delta({ route: '/kv/:key', method: 'PUT', status: '200', served_by: 'none' }), 1, 'the PUT')
  t.equal(delta({ route: '/kv/:key', method: 'GET', status: '200', served_by: 'replica' }), 3, 'three GETs served from a replica (the cache)')
  t.equal(delta({ route: '/kv/:key', method: 'GET', status: '404' }), 1, 'the missing key')
  t.equal(delta({ route: 'unmatched', method: 'GET', status: '404', served_by: 'none' }), 1, 'an unknown route')
  const hits = value(after.samples, 'skv_near_cache_hits_total', {}) - value(before.samples, 'skv_near_cache_hits_total', {})
  t.ok(hits >= 2, `near-cache hits counted (${hits})`)
  const writes = (s: Sample[]): number => value(s, 'skv_redis_command_duration_seconds_count', { op: 'write', outcome: 'ok' })
  t.equal(writes(after.samples) - writes(before.samples), 1, 'one Redis write')

  // Histogram layout of one series each: every bucket, cumulative, +Inf equal to _count, _sum > 0.
  for (const [name, buckets, labels] of [
    ['skv_http_request_duration_seconds', HTTP_BUCKETS, { route: '/kv/:key', method: 'GET', status: '200', served_by: 'replica' }],
    ['skv_redis_command_duration_seconds', REDIS_BUCKETS, { op: 'write', outcome: 'ok' }]
  ] as Array<[string, string[], Record<string, string>]>) {
    const rows = after.samples.filter(s => s.name === `${name}_bucket` && Object.entries(labels).every(([k, v]) => s.labels.some(([lk, lv]) => lk === k && lv === v)))
    const node = rows[0]?.labels.find(([k]) => k === 'node')?.[1]
    const one = rows.filter(r => node === undefined || r.labels.some(([k, v]) => k === 'node' && v === node))
    t.same(one.map(r => r.labels[0]), buckets.map(b => ['le', b]), `${name}: le first, every bucket in order`)
    t.ok(one.every((r, i) => i === 0 || r.value >= one[i - 1]!.value), `${name}: cumulative`)
    const sel = node === undefined ? labels : { ...labels, node }
    t.equal(one.at(-1)?.value, value(after.samples, `${name}_count`, sel), `${name}: +Inf = _count`)
    t.ok(value(after.samples, `${name}_sum`, sel) > 0, `${name}: _sum moved`)
  }
})
