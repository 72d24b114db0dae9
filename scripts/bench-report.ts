/**
 * Aggregation and reporting for `npm run bench`: one row per target/operation (the median run by
 * requests/s), ratios against the floor and Webdis for every gateway variant, the targets from the
 * issue, the printed table.
 */
import type { WrkResult } from './bench-lib.js'

/** gateway: WORKERS=1, near-cache on (defaults); gateway-nocache: NEAR_CACHE=false; gateway-2w: WORKERS=2;
 *  gateway-twin: as gateway, with the ops and the place in the round of gateway-cluster (its Sentinel-mode reference);
 *  gateway-cluster: as gateway, in front of a Redis Cluster (REDIS_CLUSTER_NODES) instead of Sentinel. */
export type TargetName = 'floor' | 'gateway' | 'gateway-nocache' | 'gateway-2w' | 'gateway-twin' | 'gateway-cluster' | 'webdis'
/** Every target, in measuring order (BENCH_ONLY picks among these). */
export const TARGET_NAMES: readonly TargetName[] = ['floor', 'gateway', 'gateway-nocache', 'gateway-2w', 'gateway-twin', 'gateway-cluster', 'webdis']
/** GET: the one hot key; GET 10k keys: a random key among 10 000 pre-populated ones per request. */
export type OpName = 'GET' | 'GET 10k keys' | 'PUT' | 'PUT durability=none'

export const isGateway = (t: TargetName): boolean => t.startsWith('gateway')

export interface Run {
  target: TargetName
  op: OpName
  round: number
  wrk: WrkResult
  /** Peak VmRSS of any one process of the target during this run (kB, sampled every 100 ms; for
   *  WORKERS=2 the max over the primary and each worker, per process, not summed). */
  peakRssKb: number
  /** Most processes of the target seen at once during the run (primary + workers). */
  processes: number
  /** CPU used by the target's processes (primary + workers) during the run, in cores (CPU s / wall s). */
  targetCpuCores: number
  /** CPU used by the Redis nodes behind the target (Sentinel topology or Cluster nodes) during the run, in cores. */
  redisCpuCores: number
  /** Busy CPU of the whole machine during the run, in cores (of nproc). */
  machineBusyCores: number
  /** Near-cache hits / (hits + misses) during the run, from the gateway's /metrics (single-process
   *  gateways with the near-cache on, GET ops; absent otherwise). */
  cacheHitRatio?: number
}

export interface Row {
  target: TargetName
  op: OpName
  runs: number
  /** From the median run by requests/s (for an even count, the lower of the two middle runs). */
  rps: number
  p50Ms: number
  p99Ms: number
  /** Best requests/s over the rounds, and every round's requests/s in run order. */
  bestRps: number
  allRps: number[]
  /** Errors (non-2xx + socket errors) summed over every measured run of this row. */
  errors: number
  non2xx: number
  socketErrors: number
  /** Peak VmRSS of one process (max over the target's processes and runs). */
  peakRssMb: number
  processes: number
  targetCpuCores: number
  redisCpuCores: number
  machineBusyCores: number
  /** CPU time of the target process per request (µs): less sensitive to other load than req/s. */
  cpuUsPerRequest: number
  /** From the median run (see Run.cacheHitRatio). */
  cacheHitRatio?: number
  gatewayOverFloor?: number
  gatewayOverWebdis?: number
}

export interface ReadSpread {
  /** Which runs were counted (the near-cache answers hits without Redis, so: the NEAR_CACHE=false GET runs). */
  source: string
  /** GET calls on each replica (and the master) during those runs. */
  replicas: Array<{ port: number; gets: number; share: number }>
  masterGets: number
  /** Largest deviation of a replica's share from the even share, relative to the even share. */
  maxDeviation: number
  within10Percent: boolean
}

export interface TargetCheck { target: string; measured: string; met: boolean }

const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits

export function aggregate (runs: Run[]): Row[] {
  const keys: Array<[TargetName, OpName]> = []
  for (const r of runs) if (!keys.some(([t, o]) => t === r.target && o === r.op)) keys.push([r.target, r.op])
  const rows = keys.map(([target, op]): Row => {
    const mine = runs.filter(r => r.target === target && r.op === op)
    const sorted = [...mine].sort((a, b) => a.wrk.rps - b.wrk.rps)
    const mid = sorted[Math.floor((sorted.length - 1) / 2)]
    if (mid === undefined) throw new Error(`no run for ${target} ${op}`)
    const sum = (f: (r: Run) => number): number => mine.reduce((s, r) => s + f(r), 0)
    return {
      target,
      op,
      runs: mine.length,
      rps: round(mid.wrk.rps, 0),
      p50Ms: round(mid.wrk.p50Ms, 2),
      p99Ms: round(mid.wrk.p99Ms, 2),
      bestRps: round(Math.max(...mine.map(r => r.wrk.rps)), 0),
      allRps: mine.map(r => round(r.wrk.rps, 0)),
      errors: sum(r => r.wrk.errors),
      non2xx: sum(r => r.wrk.non2xx),
      socketErrors: sum(r => r.wrk.socketErrors),
      peakRssMb: round(Math.max(...mine.map(r => r.peakRssKb)) / 1024, 1),
      processes: Math.max(...mine.map(r => r.processes)),
      targetCpuCores: round(mid.targetCpuCores, 2),
      redisCpuCores: round(mid.redisCpuCores, 2),
      machineBusyCores: round(mid.machineBusyCores, 2),
      cpuUsPerRequest: round(mid.wrk.rps > 0 ? (mid.targetCpuCores / mid.wrk.rps) * 1e6 : 0, 1),
      ...(mid.cacheHitRatio === undefined ? {} : { cacheHitRatio: round(mid.cacheHitRatio, 4) })
    }
  })
  const find = (t: TargetName, o: OpName): Row | undefined => rows.find(r => r.target === t && r.op === o)
  for (const row of rows) {
    if (!isGateway(row.target)) continue
    // The floor answers a constant whatever the key: every GET row is compared with its GET.
    const floor = find('floor', row.op.startsWith('GET') ? 'GET' : 'PUT')
    const webdis = find('webdis', row.op === 'PUT durability=none' ? 'PUT' : row.op)
    if (floor !== undefined && floor.rps > 0) row.gatewayOverFloor = round(row.rps / floor.rps, 2)
    if (webdis !== undefined && webdis.rps > 0) row.gatewayOverWebdis = round(row.rps / webdis.rps, 2)
  }
  return rows
}

export function readSpread (source: string, replicas: Array<{ port: number; gets: number }>, masterGets: number): ReadSpread {
  const total = replicas.reduce((s, r) => s + r.gets, 0)
  const even = replicas.length > 0 ? 1 / replicas.length : 0
  const withShare = replicas.map(r => ({ ...r, share: total > 0 ? round(r.gets / total, 4) : 0 }))
  const maxDeviation = total > 0 && even > 0
    ? round(Math.max(...withShare.map(r => Math.abs(r.gets / total - even) / even)), 4)
    : 1
  return { source, replicas: withShare, masterGets, maxDeviation, within10Percent: total > 0 && maxDeviation <= 0.1 }
}

/**
 * The targets from the issue. Throughput and latency: the default gateway (WORKERS=1, near-cache on),
 * except "GET >= Webdis", judged on the best documented setup (WORKERS=2, near-cache on; the 1-worker
 * ratio is printed with it for information). RSS: per process, max over every gateway process of every
 * variant. Read spread: the NEAR_CACHE=false GET runs. Errors: every gateway variant.
 */
export function checkTargets (rows: Row[], spread: ReadSpread): TargetCheck[] {
  const find = (t: TargetName, o: OpName): Row | undefined => rows.find(r => r.target === t && r.op === o)
  const gwGet = find('gateway', 'GET')
  const gwPut = find('gateway', 'PUT')
  const gw2Get = find('gateway-2w', 'GET')
  const ncGet = find('gateway-nocache', 'GET')
  const floorGet = find('floor', 'GET')
  const floorPut = find('floor', 'PUT')
  const checks: TargetCheck[] = []
  const x = (row: Row | undefined, value: number | undefined): string => value === undefined ? 'n/a' : `${value.toFixed(2)} x (${row?.rps ?? 0} req/s)`
  const ratio = (name: string, row: Row | undefined, value: number | undefined, min: number, info = ''): void => {
    checks.push({ target: name, measured: x(row, value) + info, met: value !== undefined && value >= min })
  }
  // Issue 14: CPU time per request against the floor's, measured in the same run.
  const cpu = (name: string, row: Row | undefined, ref: Row | undefined, max: number, info = ''): void => {
    const r = row === undefined || ref === undefined || ref.cpuUsPerRequest <= 0 ? undefined : row.cpuUsPerRequest / ref.cpuUsPerRequest
    checks.push({
      target: name,
      measured: r === undefined ? 'n/a' : `${r.toFixed(2)} x (${row!.cpuUsPerRequest.toFixed(0)} vs ${ref!.cpuUsPerRequest.toFixed(0)} us/req)${info}`,
      met: r !== undefined && r <= max
    })
  }
  cpu('cache-hit GET CPU/req <= 1.4 x floor GET', gwGet, floorGet, 1.4)
  cpu('GET reading a replica (gateway-nocache) CPU/req <= 3 x floor GET', ncGet, floorGet, 3)
  cpu('PUT replicated CPU/req <= 3 x floor PUT', gwPut, floorPut, 3)
  // Issue 16: Cluster mode within 10% of Sentinel mode, CPU per request, same load in the same run,
  // against the Sentinel-mode gateway that runs the same ops at the same place in each round
  // (gateway-twin). The process that also runs GET 10k keys and PUT durability=none ("gateway") is
  // no reference: a Sentinel-mode gateway in gateway-cluster's place measured 1.71 x its cache-hit
  // GET (bench/README.md, session 6). The ratio to "gateway" is printed too.
  const twinGet = find('gateway-twin', 'GET')
  const twinPut = find('gateway-twin', 'PUT')
  const vsGateway = (row: Row | undefined, ref: Row | undefined): string => row === undefined || ref === undefined || ref.cpuUsPerRequest <= 0
    ? '' : `; info: ${(row.cpuUsPerRequest / ref.cpuUsPerRequest).toFixed(2)} x "gateway" (${ref.cpuUsPerRequest.toFixed(0)} us/req)`
  cpu('Cluster GET (cache hit) CPU/req <= 1.10 x Sentinel mode (gateway-twin)', find('gateway-cluster', 'GET'), twinGet, 1.1, vsGateway(find('gateway-cluster', 'GET'), gwGet))
  cpu('Cluster PUT replicated CPU/req <= 1.10 x Sentinel mode (gateway-twin)', find('gateway-cluster', 'PUT'), twinPut, 1.1, vsGateway(find('gateway-cluster', 'PUT'), gwPut))
  ratio('GET >= 0.7 x floor (gateway: 1 process, near-cache)', gwGet, gwGet?.gatewayOverFloor, 0.7)
  ratio('PUT (replicated, 1 process) >= 0.4 x floor', gwPut, gwPut?.gatewayOverFloor, 0.4)
  ratio('GET >= 1.0 x Webdis (gateway-2w: WORKERS=2, near-cache)', gw2Get, gw2Get?.gatewayOverWebdis, 1,
    `; info: 1 process ${x(gwGet, gwGet?.gatewayOverWebdis)}`)
  for (const [row, max] of [[gwGet, 2], [gwPut, 4]] as const) {
    if (row === undefined) continue
    const floorP99 = find('floor', row.op)?.p99Ms
    checks.push({
      target: `${row.op} p99 <= ${max} x floor p99 at 50 connections (1 process)`,
      measured: `${row.p99Ms.toFixed(2)} ms (floor ${floorP99?.toFixed(2) ?? 'n/a'} ms)`,
      met: floorP99 !== undefined && row.p99Ms <= max * floorP99
    })
  }
  const gwRows = rows.filter(r => isGateway(r.target))
  const variants = [...new Set(gwRows.map(r => r.target))]
  const rssOf = (t: TargetName): number => Math.max(...gwRows.filter(r => r.target === t).map(r => r.peakRssMb))
  const peakRss = gwRows.length > 0 ? Math.max(...gwRows.map(r => r.peakRssMb)) : 0
  checks.push({
    target: 'RSS < 150 MB per process (every gateway process)',
    measured: `${peakRss.toFixed(1)} MB (${variants.map(t => `${t} ${rssOf(t).toFixed(1)}`).join(', ')})`,
    met: gwRows.length > 0 && peakRss < 150
  })
  const shares = spread.replicas.map(r => `:${r.port} ${(r.share * 100).toFixed(1)}%`).join(' / ')
  if (ncGet === undefined) checks.push({ target: `reads spread over replicas within 10% (${spread.source})`, measured: 'n/a', met: false })
  else checks.push({ target: `reads spread over replicas within 10% (${spread.source})`, measured: `${shares} (max dev ${(spread.maxDeviation * 100).toFixed(1)}%, master ${spread.masterGets})`, met: spread.within10Percent })
  const gwErrors = gwRows.reduce((s, r) => s + r.errors, 0)
  checks.push({ target: 'errors = 0 (every gateway variant)', measured: String(gwErrors), met: gwErrors === 0 })
  return checks
}

function table (head: string[], body: string[][], rightAlign: (i: number) => boolean): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map(r => (r[i] ?? '').length)))
  const fmt = (cells: string[]): string => cells.map((c, i) => rightAlign(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)).join('  ')
  return [fmt(head), widths.map(w => '-'.repeat(w)).join('  '), ...body.map(fmt)]
}

export function formatRows (rows: Row[]): string[] {
  const head = ['target', 'op', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'procs', 'RSS MB/proc', 'cpu cores', 'cpu us/req', 'redis cpu', 'machine busy', 'cache hit', 'gw/floor', 'gw/webdis', 'req/s per round']
  const body = rows.map(r => [
    r.target, r.op, String(r.rps), r.p50Ms.toFixed(2), r.p99Ms.toFixed(2), String(r.errors), String(r.processes), r.peakRssMb.toFixed(1),
    r.targetCpuCores.toFixed(2), r.cpuUsPerRequest.toFixed(0), r.redisCpuCores.toFixed(2), r.machineBusyCores.toFixed(2),
    r.cacheHitRatio === undefined ? '' : `${(r.cacheHitRatio * 100).toFixed(1)}%`,
    r.gatewayOverFloor === undefined ? '' : r.gatewayOverFloor.toFixed(2),
    r.gatewayOverWebdis === undefined ? '' : r.gatewayOverWebdis.toFixed(2),
    r.allRps.join(' ')
  ])
  return table(head, body, i => i >= 2 && i <= 14)
}

export function formatChecks (checks: TargetCheck[]): string[] {
  // n/a: a target left out by BENCH_ONLY.
  return table(['target', 'measured', 'result'], checks.map(c => [c.target, c.measured, c.met ? 'met' : c.measured.startsWith('n/a') ? 'not measured' : 'NOT met']), () => false)
}

/** Markdown version of the rows (for bench/README.md). */
export function markdownRows (rows: Row[]): string[] {
  const out = ['| target | op | req/s | p50 ms | p99 ms | errors | peak RSS MB/process | CPU µs/req | gw/floor | gw/webdis |', '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |']
  for (const r of rows) {
    out.push(`| ${r.target} | ${r.op} | ${r.rps} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.errors} | ${r.peakRssMb.toFixed(1)} | ${r.cpuUsPerRequest.toFixed(0)} | ${r.gatewayOverFloor?.toFixed(2) ?? ''} | ${r.gatewayOverWebdis?.toFixed(2) ?? ''} |`)
  }
  return out
}
