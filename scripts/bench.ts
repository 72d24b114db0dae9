/**
 * `npm run bench`: throughput and latency of the gateway against two references, in one bounded run
 * (< 5 min including the build) on loopback. Targets, each its own process(es):
 *
 *   floor            a bare Fastify server (scripts/bench-floor.ts): the Node HTTP floor; GET, PUT
 *   gateway          `node dist/src/server.js` with the defaults that matter here: WORKERS=1, NEAR_CACHE=true;
 *                    GET (the hot key: near-cache hits), GET 10k keys, PUT (replicated), PUT durability=none
 *   gateway-nocache  the same with NEAR_CACHE=false (the "before" reference): GET (every GET reads a replica);
 *                    the read spread over the replicas (INFO commandstats cmdstat_get) is counted on these runs
 *   gateway-2w       WORKERS=2 (a node:cluster primary + 2 workers on one port), near-cache on: GET,
 *                    GET 10k keys, PUT; RSS = peak per process (primary and each worker), CPU = their sum
 *   webdis           Webdis (C, 2 threads) against the same master: GET, GET 10k keys, PUT
 *
 * All gateways run in front of one real Sentinel topology (1 master, 2 replicas, 3 sentinels),
 * LOG_LEVEL=warn, EVENT_LOOP_MAX_DELAY_MS=0; only the target being measured gets load. "GET 10k keys":
 * a wrk Lua script asks for a uniformly random key among bench-k-0..9999 (100-byte values written
 * straight to the master with one ioredis pipeline, then WAIT for both replicas, before any gateway starts).
 *
 * wrk (1 thread, 50 connections) hits each target/op with 100-byte values, rounds alternating the
 * targets; each row is the median run by requests/s. Prints one table, the targets from the issue
 * (met / not met) and writes bench/results/latest.json. See bench/README.md.
 *
 * Env: BENCH_DURATION_S (5), BENCH_ROUNDS (3; fewer, never < 2, when the time budget would be
 * exceeded), BENCH_WARMUP_S (2), BENCH_CONNECTIONS (50); diagnostics: BENCH_GATEWAY_LOG_LEVEL (warn;
 * `info` measures the per-request log line), BENCH_CPU_PROF_DIR (run the gateways with --cpu-prof into
 * that directory).
 */
import { execFileSync } from 'node:child_process'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { serverPath } from '../test/helpers/gateway.js'
import { freePorts } from '../test/helpers/topology-procs.js'
import { MISSING_BINARIES_MESSAGE, startTopology, type NodeProc, type Topology } from '../test/helpers/topology.js'
import {
  cpuDelta, cpuSeconds, cpuSecondsOf, getCalls, killAllStartedSync, machineJiffies, onPath, processAgeMs, processTree, redisVersion,
  rssKb, rssSampler, runWrk, say, startChild, stopChild, waitReady, writeWrkScript, type Child
} from './bench-lib.js'
import {
  aggregate, checkTargets, formatChecks, formatRows, isGateway, readSpread, type OpName, type Run, type TargetName
} from './bench-report.js'

// Counted from the start of `npm run bench` (the build, 20-70 s on a busy machine, included). 13
// target/ops: a round takes ~70 s at the default 5 s per run, the warm-up ~30 s, the setup ~15 s.
const HARD_LIMIT_MS = 295_000
/** No new round starts once the estimated end of that round would pass this (at least 2 rounds run). */
const ROUNDS_BUDGET_MS = 265_000
const VALUE_BYTES = 100
const intEnv = (name: string, def: number, min: number, max: number): number => {
  const n = Number(process.env[name] ?? def)
  if (!Number.isInteger(n) || n < min || n > max) { say(`bench: ${name} must be an integer between ${min} and ${max}`); process.exit(2) }
  return n
}
const DURATION_S = intEnv('BENCH_DURATION_S', 5, 1, 10)
const ROUNDS = intEnv('BENCH_ROUNDS', 3, 2, 5)
const WARMUP_S = intEnv('BENCH_WARMUP_S', 2, 0, 5)
const CONNECTIONS = intEnv('BENCH_CONNECTIONS', 50, 1, 500)
const GATEWAY_LOG_LEVEL = process.env.BENCH_GATEWAY_LOG_LEVEL ?? 'warn'
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF_DIR

if (onPath('wrk') === undefined || onPath('webdis') === undefined) {
  say(`bench needs wrk and webdis (missing: ${['wrk', 'webdis'].filter(b => onPath(b) === undefined).join(', ')}): install them with 'apt-get install -y wrk webdis'`)
  process.exit(1)
}
if (onPath('redis-server') === undefined) { say(`bench: ${MISSING_BINARIES_MESSAGE}`); process.exit(1) }

// `npm run bench` = build + this script, bounded as a whole: time is counted from the start of the
// npm shell that launched us (the build ran before), when that is recent.
const parentAge = processAgeMs(process.ppid)
const started = Date.now() - (parentAge !== undefined && parentAge < 300_000 ? Math.round(parentAge) : 0)
const here = new URL('../', import.meta.url)
const root = here.href.endsWith('/dist/') ? new URL('../', here) : here
const resultsFile = fileURLToPath(new URL('bench/results/latest.json', root))
const floorScript = fileURLToPath(new URL('./bench-floor.js', import.meta.url))
const KEY_GET = 'bench-get'
const VALUE = 'v'.repeat(VALUE_BYTES)

let topo: Topology | undefined
let tmp: string | undefined
const children: Child[] = []

let cleaning: Promise<void> | undefined
function cleanup (): Promise<void> {
  cleaning ??= (async () => {
    // In parallel: each gateway drains and closes its Redis connections (a WORKERS=2 primary forwards
    // the SIGTERM to its workers; stopChild also SIGKILLs, by pid, any worker it recorded still alive).
    await Promise.all(children.map(c => stopChild(c).catch(() => {})))
    await topo?.stop().catch(() => {})
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true }).catch(() => {})
  })()
  return cleaning
}
process.on('exit', killAllStartedSync)
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => { say(`bench: ${sig}, stopping everything it started`); void cleanup().finally(() => process.exit(130)) })
}
const watchdog = setTimeout(() => {
  say(`bench: still running ${HARD_LIMIT_MS / 1000} s after npm run bench started, aborting`)
  void cleanup().finally(() => process.exit(1))
}, Math.max(120_000, HARD_LIMIT_MS - (Date.now() - started)))

const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(0)} s`
const http = async (url: string, init?: RequestInit): Promise<{ status: number; body: string; headers: Headers }> => {
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(3000) })
  return { status: r.status, body: await r.text(), headers: r.headers }
}
function versionOf (cmd: string, args: string[]): string {
  try { return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 3000 }).trim().split('\n')[0] ?? 'unknown' } catch (err) {
    const out = (err as { stdout?: string }).stdout ?? ''
    return out.trim().split('\n')[0] ?? 'unknown'
  }
}

interface Target {
  name: TargetName
  child: Child
  base: string
  /** The target's processes now: the child and its direct children (cluster workers). */
  pids: () => number[]
  ops: Array<{ op: OpName; path: string; script: string }>
  /** Scrape near-cache hits/misses from /metrics around each GET run (single-process gateways with the cache). */
  cacheMetrics: boolean
}

interface Variant { name: TargetName; env: { WORKERS: string; NEAR_CACHE: string }; workers: number; cache: boolean }
const VARIANTS: Variant[] = [
  { name: 'gateway', env: { WORKERS: '1', NEAR_CACHE: 'true' }, workers: 1, cache: true },
  { name: 'gateway-nocache', env: { WORKERS: '1', NEAR_CACHE: 'false' }, workers: 1, cache: false },
  { name: 'gateway-2w', env: { WORKERS: '2', NEAR_CACHE: 'true' }, workers: 2, cache: true }
]
const KEYS_10K = 10_000
const KEY_10K_PREFIX = 'bench-k-'

/** A GET on a new TCP connection (Connection: close), so that cluster workers take turns answering. */
function freshGet (url: string): Promise<{ status: number; body: string; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false, timeout: 3000 }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)))
    req.on('error', reject)
    req.end()
  })
}

/** skv_near_cache_hits_total and _misses_total from the gateway's /metrics (undefined if absent). */
async function cacheCounters (base: string): Promise<{ hits: number; misses: number } | undefined> {
  const r = await http(`${base}/metrics`).catch(() => undefined)
  if (r === undefined || r.status !== 200) return undefined
  const num = (name: string): number | undefined => {
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(r.body)
    return m?.[1] === undefined ? undefined : Number(m[1])
  }
  const hits = num('skv_near_cache_hits_total')
  const misses = num('skv_near_cache_misses_total')
  return hits === undefined || misses === undefined ? undefined : { hits, misses }
}

async function main (): Promise<void> {
  const nproc = os.availableParallelism()
  say(`bench: started ${elapsed()} after npm run bench (build); ${nproc} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), node ${process.version}; ${ROUNDS} rounds x ${DURATION_S} s per target/op, wrk 1 thread ${CONNECTIONS} connections`)
  say(`NOTE: the ${nproc} cores are SHARED by the load generator (wrk), the server under test, the idle gateways, the 3 redis-server`)
  say('      and 3 redis-sentinel processes and this script: absolute numbers are lower than on dedicated hardware; compare the ratios.')

  // How busy the machine already is (other jobs on the shared cores skew every number below).
  const idle0 = machineJiffies()
  await new Promise(resolve => setTimeout(resolve, 1000))
  const idle1 = machineJiffies()
  const busyBeforeCores = idle1.total > idle0.total ? ((idle1.busy - idle0.busy) / (idle1.total - idle0.total)) * nproc : 0
  const loadBefore = os.loadavg().map(x => Math.round(x * 100) / 100)
  say(`machine before start: ${busyBeforeCores.toFixed(2)}/${nproc} cores busy, load average ${loadBefore.join(' ')}${busyBeforeCores > 0.3 * nproc ? '  (WARNING: other work is running on these cores; results will be skewed)' : ''}`)

  tmp = await mkdtemp(path.join(os.tmpdir(), 'skv-bench-'))
  topo = await startTopology()
  const master = await topo.masterProc()
  const replicas = topo.redis.filter(r => r !== master)
  const redisPids = topo.redis.map(r => r.pid)
  const redisCpu = (): number => redisPids.reduce((s, pid) => s + cpuSeconds(pid), 0)
  say(`[${elapsed()}] topology up: master :${master.port}, replicas ${replicas.map(r => `:${r.port}`).join(' ')}, REDIS_SENTINELS=${topo.sentinelList}`)

  // The 10 000 keys of "GET 10k keys": straight to the master in one pipeline, then WAIT for the replicas.
  const mc = topo.client(master.port)
  let redisVer = 'unknown'
  try {
    redisVer = await redisVersion(mc)
    const pipe = mc.pipeline()
    for (let i = 0; i < KEYS_10K; i++) pipe.set(`${KEY_10K_PREFIX}${i}`, VALUE)
    const results = await pipe.exec()
    const failed = (results ?? []).filter(([err]) => err !== null).length
    if (results === null || results.length !== KEYS_10K || failed > 0) throw new Error(`pre-populating ${KEYS_10K} keys: ${failed} SETs failed`)
    const acked = Number(await mc.call('WAIT', String(replicas.length), '10000'))
    if (acked < replicas.length) throw new Error(`pre-populating ${KEYS_10K} keys: WAIT ${replicas.length} answered ${acked}`)
  } finally { await mc.quit().catch(() => {}) }
  say(`[${elapsed()}] ${KEYS_10K} keys ${KEY_10K_PREFIX}0..${KEYS_10K - 1} written to the master and acknowledged by ${replicas.length} replicas (WAIT)`)

  const ports = await freePorts(VARIANTS.length + 2)
  const floorPort = ports[VARIANTS.length] as number
  const webdisPort = ports[VARIANTS.length + 1] as number
  const basePath = { PATH: process.env.PATH ?? '', ...(process.env.HOME === undefined ? {} : { HOME: process.env.HOME }) }

  // Gateways: the real server process, one per variant, no per-request log line, no load shedding.
  const nodeArgs = CPU_PROF_DIR === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF_DIR}`]
  const gateways = VARIANTS.map((v, i) => {
    const port = ports[i] as number
    const child = startChild(v.name, process.execPath, [...nodeArgs, serverPath()], {
      ...basePath,
      REDIS_SENTINELS: topo!.sentinelList,
      REDIS_MASTER_NAME: topo!.masterName,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: GATEWAY_LOG_LEVEL,
      EVENT_LOOP_MAX_DELAY_MS: '0',
      ...v.env
    })
    children.push(child)
    return { ...v, child, port, base: `http://127.0.0.1:${port}` }
  })
  await Promise.all(gateways.map(g => waitReady(g.child, g.name, 30_000, async () =>
    (await http(`${g.base}/readyz`)).status === 200 && processTree(g.child).length - 1 >= (g.workers > 1 ? g.workers : 0))))
  const gw = gateways[0]!
  // The hot key, written through the default gateway; then every gateway must answer it from a replica
  // (cache variants: from the near-cache, x-cache: hit, on every worker after a first miss each).
  const put = await http(`${gw.base}/kv/${KEY_GET}`, { method: 'PUT', body: VALUE, headers: { 'content-type': 'application/octet-stream' } })
  if (put.status !== 201 && put.status !== 200) throw new Error(`gateway PUT of the GET key answered ${put.status}: ${put.body}`)
  for (const g of gateways) {
    await waitReady(g.child, `${g.name} reads from replicas${g.cache ? ' / near-cache' : ''}`, 15_000, async () => {
      const answers = []
      for (let i = 0; i < 2 * g.workers + 2; i++) answers.push(await freshGet(`${g.base}/kv/${KEY_GET}`))
      if (!answers.every(r => r.status === 200 && r.body === VALUE && r.headers['x-served-by'] === 'replica')) return false
      // With the cache: the last `workers` answers (each worker saw the key before) are hits.
      return g.cache
        ? answers.slice(-g.workers).every(r => r.headers['x-cache'] === 'hit')
        : answers.every(r => r.headers['x-cache'] === undefined)
    })
  }
  const maxRssMb = (pids: number[]): number => Math.max(0, ...pids.map(pid => rssKb(pid) ?? 0)) / 1024
  const idleRssMb = Object.fromEntries(gateways.map(g => [g.name, Math.round(maxRssMb(processTree(g.child)) * 10) / 10]))

  // Floor: a bare Fastify in its own process.
  const floor = startChild('floor', process.execPath, [floorScript], { ...basePath, PORT: String(floorPort) })
  children.push(floor)
  const fl = `http://127.0.0.1:${floorPort}`
  await waitReady(floor, 'floor server', 10_000, async () => (await http(`${fl}/kv/${KEY_GET}`)).body.length === VALUE_BYTES)

  // Webdis: 2 threads against the current master, logging to a file in the temp dir.
  const webdisConf = path.join(tmp, 'webdis.json')
  await writeFile(webdisConf, JSON.stringify({
    redis_host: '127.0.0.1',
    redis_port: master.port,
    redis_auth: null,
    http_host: '127.0.0.1',
    http_port: webdisPort,
    threads: 2,
    daemonize: false,
    database: 0,
    verbosity: 1,
    logfile: path.join(tmp, 'webdis.log')
  }, null, 2))
  const webdis = startChild('webdis', 'webdis', [webdisConf], basePath)
  children.push(webdis)
  const wd = `http://127.0.0.1:${webdisPort}`
  await waitReady(webdis, 'webdis', 10_000, async () => (await http(`${wd}/GET/${KEY_GET}`)).body === JSON.stringify({ GET: VALUE }))
  say(`[${elapsed()}] ${gateways.map(g => `${g.name} :${g.port} (pid ${processTree(g.child).join('+')})`).join(', ')}, floor :${floorPort} (pid ${floor.pid}), webdis :${webdisPort} (pid ${webdis.pid}) ready`)

  // wrk Lua scripts (GET, PUT with a 100-byte body, GET of a random key among 10 000), and a sanity
  // request on every target/op.
  const getLua = path.join(tmp, 'get.lua')
  const putLua = path.join(tmp, 'put.lua')
  const get10kGw = path.join(tmp, 'get-10k-gateway.lua')
  const get10kWd = path.join(tmp, 'get-10k-webdis.lua')
  await writeWrkScript(getLua, 'GET', VALUE_BYTES)
  await writeWrkScript(putLua, 'PUT', VALUE_BYTES)
  await writeWrkScript(get10kGw, 'GET', VALUE_BYTES, { pathPrefix: `/kv/${KEY_10K_PREFIX}`, count: KEYS_10K })
  await writeWrkScript(get10kWd, 'GET', VALUE_BYTES, { pathPrefix: `/GET/${KEY_10K_PREFIX}`, count: KEYS_10K })
  const opsOf = (g: typeof gw): Target['ops'] => {
    const get = { op: 'GET' as const, path: `/kv/${KEY_GET}`, script: getLua }
    const get10k = { op: 'GET 10k keys' as const, path: `/kv/${KEY_10K_PREFIX}0`, script: get10kGw }
    const putOp = { op: 'PUT' as const, path: '/kv/bench-put', script: putLua }
    const putNone = { op: 'PUT durability=none' as const, path: '/kv/bench-put-none?durability=none', script: putLua }
    if (g.name === 'gateway') return [get, get10k, putOp, putNone]
    if (g.name === 'gateway-nocache') return [get]
    return [get, get10k, putOp]
  }
  const targets: Target[] = [
    { name: 'floor', child: floor, base: fl, pids: () => [floor.pid], cacheMetrics: false, ops: [{ op: 'GET', path: `/kv/${KEY_GET}`, script: getLua }, { op: 'PUT', path: '/kv/bench-put', script: putLua }] },
    ...gateways.map((g): Target => ({ name: g.name, child: g.child, base: g.base, pids: () => processTree(g.child), cacheMetrics: g.cache && g.workers === 1, ops: opsOf(g) })),
    {
      name: 'webdis',
      child: webdis,
      base: wd,
      pids: () => [webdis.pid],
      cacheMetrics: false,
      ops: [
        { op: 'GET', path: `/GET/${KEY_GET}`, script: getLua },
        { op: 'GET 10k keys', path: `/GET/${KEY_10K_PREFIX}0`, script: get10kWd },
        { op: 'PUT', path: '/SET/bench-webdis-put', script: putLua }
      ]
    }
  ]
  const opCount = targets.reduce((s, t) => s + t.ops.length, 0)
  for (const t of targets) {
    for (const o of t.ops) {
      const r = o.op.startsWith('GET')
        ? await http(t.base + o.path)
        : await http(t.base + o.path, { method: 'PUT', body: VALUE, headers: { 'content-type': 'application/octet-stream' } })
      if (r.status < 200 || r.status > 299 || (o.op.startsWith('GET') && !r.body.includes(VALUE))) {
        throw new Error(`sanity check ${t.name} ${o.op} ${o.path} answered ${r.status}: ${r.body.slice(0, 200)}`)
      }
    }
  }

  if (WARMUP_S > 0) {
    for (const t of targets) for (const o of t.ops) await runWrk(t.base + o.path, o.script, WARMUP_S, CONNECTIONS)
    say(`[${elapsed()}] warm-up done (${WARMUP_S} s per target/op, ${opCount} target/ops, not recorded)`)
  }

  const runs: Run[] = []
  const firstRoundStart = Date.now()
  const spreadCounts = new Map<number, number>(replicas.map(r => [r.port, 0]))
  let masterGets = 0
  const getCallsOf = async (p: NodeProc): Promise<number> => {
    const c = topo!.client(p.port)
    try { return await getCalls(c) } finally { await c.quit().catch(() => {}) }
  }
  let roundsDone = 0
  for (let round = 1; round <= ROUNDS; round++) {
    const roundStart = Date.now()
    if (round > 2 && roundsDone > 0) {
      const perRound = (roundStart - firstRoundStart) / roundsDone
      if (roundStart - started + perRound > ROUNDS_BUDGET_MS) {
        say(`[${elapsed()}] time budget: stopping after ${roundsDone} rounds (a round takes ~${(perRound / 1000).toFixed(0)} s)`)
        break
      }
    }
    for (const t of targets) {
      for (const o of t.ops) {
        const spread = t.name === 'gateway-nocache' && o.op === 'GET'
        const before = spread ? await Promise.all([master, ...replicas].map(getCallsOf)) : []
        const cache0 = t.cacheMetrics && o.op.startsWith('GET') ? await cacheCounters(t.base) : undefined
        const cpu0 = cpuSecondsOf(t.pids())
        const redis0 = redisCpu()
        const mach0 = machineJiffies()
        const wall0 = process.hrtime.bigint()
        const sampler = rssSampler(t.pids, 100)
        const wrk = await runWrk(t.base + o.path, o.script, DURATION_S, CONNECTIONS)
        const rss = sampler.stop()
        const wall = Number(process.hrtime.bigint() - wall0) / 1e9
        const mach1 = machineJiffies()
        const cpu1 = cpuSecondsOf(t.pids())
        const redis1 = redisCpu()
        const cache1 = cache0 === undefined ? undefined : await cacheCounters(t.base)
        const cacheLookups = cache0 === undefined || cache1 === undefined ? 0 : (cache1.hits - cache0.hits) + (cache1.misses - cache0.misses)
        const run: Run = {
          target: t.name,
          op: o.op,
          round,
          wrk,
          peakRssKb: rss.peakKb,
          processes: rss.processes,
          targetCpuCores: cpuDelta(cpu0, cpu1) / wall,
          redisCpuCores: (redis1 - redis0) / wall,
          machineBusyCores: mach1.total > mach0.total ? ((mach1.busy - mach0.busy) / (mach1.total - mach0.total)) * nproc : 0,
          ...(cacheLookups > 0 ? { cacheHitRatio: (cache1!.hits - cache0!.hits) / cacheLookups } : {})
        }
        runs.push(run)
        if (spread) {
          const after = await Promise.all([master, ...replicas].map(getCallsOf))
          masterGets += (after[0] ?? 0) - (before[0] ?? 0)
          replicas.forEach((r, i) => spreadCounts.set(r.port, (spreadCounts.get(r.port) ?? 0) + (after[i + 1] ?? 0) - (before[i + 1] ?? 0)))
        }
        const hit = run.cacheHitRatio === undefined ? '' : `  cache hits ${(run.cacheHitRatio * 100).toFixed(1)}%`
        say(`[${elapsed()}] round ${round} ${t.name.padEnd(15)} ${o.op.padEnd(19)} ${wrk.rps.toFixed(0).padStart(6)} req/s  p50 ${wrk.p50Ms.toFixed(2)} ms  p99 ${wrk.p99Ms.toFixed(2)} ms  errors ${wrk.errors}  RSS ${(rss.peakKb / 1024).toFixed(1)} MB${rss.processes > 1 ? `/proc (${rss.processes} procs)` : ''}  cpu ${run.targetCpuCores.toFixed(2)} (redis ${run.redisCpuCores.toFixed(2)}, machine ${run.machineBusyCores.toFixed(2)}/${nproc})${hit}`)
      }
    }
    roundsDone++
  }

  const rows = aggregate(runs)
  const spread = readSpread('gateway-nocache GET runs (NEAR_CACHE=false)', replicas.map(r => ({ port: r.port, gets: spreadCounts.get(r.port) ?? 0 })), masterGets)
  const gwRows = rows.filter(r => isGateway(r.target))
  const gatewayPeakRssMb = gwRows.length > 0 ? Math.max(...gwRows.map(r => r.peakRssMb)) : 0
  const checks = checkTargets(rows, spread)
  const logLines = Object.fromEntries(gateways.map(g => [g.name, g.child.lines()]))
  const gatewayLogLines = gateways.reduce((s, g) => s + g.child.lines(), 0)
  const gatewayLogSample = gateways.flatMap(g => g.child.output().split('\n').filter(l => l.trim() !== '').slice(0, 2).map(l => `${g.name}: ${l.slice(0, 400)}`))

  say('')
  say(`Results (each row: the median of ${roundsDone} runs by req/s; p50/p99/cpu from that run; errors = non-2xx + socket errors summed over all runs;`)
  say('RSS MB/proc = max VmRSS of any ONE process of the target (primary or a worker), sampled every 100 ms; cpu cores = CPU seconds of')
  say(`all the target's processes / wall seconds; cache hit = near-cache hits/(hits+misses) from /metrics, 1-process gateways). ${VALUE_BYTES}-byte values.`)
  say(`gateway = WORKERS=1 NEAR_CACHE=true; gateway-nocache = WORKERS=1 NEAR_CACHE=false; gateway-2w = WORKERS=2 NEAR_CACHE=true. GET = one hot key; GET 10k keys = random key of ${KEYS_10K}.`)
  say(`NOTE: wrk, the server under test and all Redis processes share the same ${nproc} cores.`)
  for (const l of formatRows(rows)) say(l)
  say('')
  say(`Read spread over replicas during the ${spread.source} (INFO commandstats cmdstat_get): ${spread.replicas.map(r => `:${r.port} ${r.gets} (${(r.share * 100).toFixed(1)}%)`).join(', ')}; master ${spread.masterGets}`)
  say(`Gateway RSS idle after start (max per process): ${gateways.map(g => `${g.name} ${idleRssMb[g.name]} MB`).join(', ')}; log lines at LOG_LEVEL=${GATEWAY_LOG_LEVEL} during the run: ${gateways.map(g => `${g.name} ${logLines[g.name]}`).join(', ')}`)
  say('')
  for (const l of formatChecks(checks)) say(l)

  const result = {
    generatedAt: new Date().toISOString(),
    machine: {
      nproc,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      totalMemMb: Math.round(os.totalmem() / 1024 / 1024),
      kernel: `${os.type()} ${os.release()}`,
      node: process.version,
      redis: redisVer,
      webdis: versionOf('dpkg-query', ['-W', '-f=${Version}', 'webdis']),
      wrk: versionOf('wrk', ['-v']),
      busyCoresBeforeStart: Math.round(busyBeforeCores * 100) / 100,
      loadAverageBeforeStart: loadBefore,
      loadAverageAtEnd: os.loadavg().map(x => Math.round(x * 100) / 100),
      note: `the ${nproc} cores are shared by wrk, the server under test, the idle gateways, 3 redis-server, 3 redis-sentinel and the bench script`
    },
    settings: {
      durationS: DURATION_S,
      rounds: roundsDone,
      roundsRequested: ROUNDS,
      warmupS: WARMUP_S,
      wrk: { threads: 1, connections: CONNECTIONS, timeoutS: 2 },
      valueBytes: VALUE_BYTES,
      order: targets.map(t => `${t.name} (${t.ops.map(o => o.op).join(', ')})`).join(' -> ') + ', repeated each round',
      aggregation: 'median run by req/s per target/op (lower middle for an even count); errors summed over all runs; RSS = max over runs of the largest single process',
      gateway: { LOG_LEVEL: GATEWAY_LOG_LEVEL, EVENT_LOOP_MAX_DELAY_MS: '0', cpuProf: CPU_PROF_DIR !== undefined, durability: 'replicated (default) and ?durability=none' },
      gatewayVariants: Object.fromEntries(gateways.map(g => [g.name, { env: g.env, ops: opsOf(g).map(o => o.op) }])),
      hotKey: KEY_GET,
      keys10k: { count: KEYS_10K, names: `${KEY_10K_PREFIX}0..${KEY_10K_PREFIX}${KEYS_10K - 1}`, valueBytes: VALUE_BYTES, populated: 'ioredis pipeline of SETs to the master, then WAIT for all replicas, before the gateways start', access: 'uniformly random key per request (wrk Lua request())' },
      webdis: { threads: 2, redis: 'current master' }
    },
    rows,
    readSpread: spread,
    gatewayIdleRssMb: idleRssMb.gateway ?? 0,
    gatewayIdleRssMbByVariant: idleRssMb,
    gatewayPeakRssMb,
    gatewayLogLines,
    gatewayLogLinesByVariant: logLines,
    gatewayLogSample,
    checks,
    runs,
    totalSeconds: Math.round((Date.now() - started) / 1000)
  }
  await mkdir(path.dirname(resultsFile), { recursive: true })
  await writeFile(resultsFile, JSON.stringify(result, null, 2) + '\n')
  say('')
  say(`Wrote ${path.relative(process.cwd(), resultsFile) || resultsFile} (${elapsed()} total)`)
}

let code = 0
try {
  await main()
} catch (err) {
  say(`bench failed: ${err instanceof Error ? err.message : String(err)}`)
  code = 1
} finally {
  await cleanup()
  clearTimeout(watchdog)
}
process.exit(code)
