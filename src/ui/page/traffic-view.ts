/**
 * Traffic charts over the last 5 minutes, from the one-second samples the gateway sends
 * (src/ui/traffic.ts): requests/s and p50/p99 per route and serving role, error answers by status,
 * write acknowledgement wait, near-cache hit rate, rate-limit rejections; and a table per route.
 */
import type { TrafficPoint } from '../traffic.js'
import { lineChart, type Series } from './charts.js'
import { byId, fill, h, num } from './dom.js'

const WINDOW_MS = 5 * 60_000
/** Route lines drawn per chart (the busiest); the table lists them all. */
const TOP_ROUTES = 5

let points: TrafficPoint[] = []

/** Replaces the samples (a new connection). */
export function resetTraffic (all: TrafficPoint[]): void { points = [...all] }

/** Adds the latest sample and drops those older than the window. */
export function addPoint (p: TrafficPoint): void {
  if (points.length > 0 && points[points.length - 1]!.t >= p.t) return
  points.push(p)
  const from = p.t - WINDOW_MS
  while (points.length > 0 && points[0]!.t < from) points.shift()
}

/** `none`: the answer did not come from a read (a write, an error before any node was asked). */
const roleText = (role: string): string => role === 'none' ? '–' : role
const label = (r: { route: string; role: string }): string => r.role === 'none' ? r.route : `${r.route} (${r.role})`

/** Redraws the charts and the route table. */
export function renderTraffic (): void {
  const times = points.map(p => p.t)
  const totals = new Map<string, number>()
  for (const p of points) for (const r of p.routes) totals.set(label(r), (totals.get(label(r)) ?? 0) + r.count)
  const busiest = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP_ROUTES).map(([k]) => k)
  const perRoute = (pick: (r: TrafficPoint['routes'][number], p: TrafficPoint) => number | null, zero: boolean): Series[] =>
    busiest.map(name => ({
      name,
      values: points.map(p => {
        const r = p.routes.find(x => label(x) === name)
        return r === undefined ? (zero ? 0 : null) : pick(r, p)
      })
    }))
  const statuses = [...new Set(points.flatMap(p => Object.keys(p.errors)))].sort()
  const charts = [
    lineChart('Requests per second', 'req/s', times, perRoute((r, p) => round(r.count / p.dt), true), WINDOW_MS),
    lineChart('Latency p50', 'ms', times, perRoute(r => r.p50, false), WINDOW_MS),
    lineChart('Latency p99', 'ms', times, perRoute(r => r.p99, false), WINDOW_MS),
    lineChart('Error answers per second', '/s', times, statuses.map(st => ({ name: `HTTP ${st}`, values: points.map(p => round((p.errors[st] ?? 0) / p.dt)) })), WINDOW_MS),
    lineChart('Write acknowledgement wait', 'ms', times, [
      { name: 'p50', values: points.map(p => p.writes.p50) },
      { name: 'p99', values: points.map(p => p.writes.p99) }
    ], WINDOW_MS),
    lineChart('Near-cache hit rate', '%', times, [{
      name: 'hits',
      values: points.map(p => p.cache.hits + p.cache.misses === 0 ? null : round(100 * p.cache.hits / (p.cache.hits + p.cache.misses)))
    }], WINDOW_MS),
    lineChart('Rate-limit rejections per second', '/s', times, [{ name: 'rejected', values: points.map(p => round(p.rateLimited / p.dt)) }], WINDOW_MS)
  ]
  fill(byId('charts'), ...charts)
  renderRouteTable()
}

/** Per route and role: mean req/s over the last 10 s, p50/p99 of the last second that had requests. */
function renderRouteTable (): void {
  const recent = points.slice(-10)
  const seconds = recent.reduce((sum, p) => sum + p.dt, 0)
  const rows = new Map<string, { count: number; p50: number | null; p99: number | null; route: string; role: string }>()
  for (const p of points) {
    for (const r of p.routes) {
      const row = rows.get(label(r)) ?? { count: 0, p50: null, p99: null, route: r.route, role: r.role }
      row.p50 = r.p50
      row.p99 = r.p99
      if (recent.includes(p)) row.count += r.count
      rows.set(label(r), row)
    }
  }
  const sorted = [...rows.values()].sort((a, b) => b.count - a.count || a.route.localeCompare(b.route))
  fill(byId('routes-body'), ...sorted.map(r => h('tr', {},
    h('th', { scope: 'row' }, r.route),
    h('td', {}, roleText(r.role)),
    h('td', { class: 'num' }, num(seconds === 0 ? 0 : r.count / seconds)),
    h('td', { class: 'num' }, num(r.p50, 2)),
    h('td', { class: 'num' }, num(r.p99, 2)))))
  if (sorted.length === 0) fill(byId('routes-body'), h('tr', {}, h('td', { colspan: 5 }, 'No request in the last 5 minutes.')))
}

const round = (v: number): number => Math.round(v * 100) / 100
