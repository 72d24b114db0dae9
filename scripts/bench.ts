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
 *   gateway-twin     as `gateway`, with gateway-cluster's ops (GET, PUT) right before it in each round: its
 *                    Sentinel-mode reference (a gateway's CPU/req depends on what the process ran before)
 *   gateway-cluster  as `gateway` (WORKERS=1, near-cache on) in front of a Redis Cluster (3 masters + 3 replicas,
 *                    REDIS_CLUSTER_NODES, scripts/bench-cluster.ts): GET, PUT; CPU/req compared with `gateway-twin`
 *   webdis           Webdis (C, 2 threads) against the same master: GET, GET 10k keys, PUT
 *
 * All gateways run in front of one real Sentinel topology (1 master, 2 replicas, 3 sentinels),
 * LOG_LEVEL=warn, EVENT_LOOP_MAX_DELAY_MS=0, NODE_OPTIONS as in the Dockerfile (src/runtime.ts); only
 * the target being measured gets load. "GET 10k keys":
 * a wrk Lua script asks for a uniformly random key among bench-k-0..9999 (100-byte values written
 * straight to the master with one ioredis pipeline, then WAIT for both replicas, before any gateway starts).
 *
 * wrk (1 thread, 50 connections) hits each target/op with 100-byte values, rounds alternating the
 * targets; each row is the median run by requests/s. Prints one table, the targets from the issue
 * (met / not met) and writes bench/results/latest.json. See bench/README.md.
 *
 * Files: this one (machine check, rounds, report, JSON, cleanup), scripts/bench-targets.ts (starts and
 * readies the topology, the keys and the targets above), scripts/bench-lib.ts (child processes by pid,
 * wrk, /proc sampling), scripts/bench-report.ts (aggregation, table, checks), scripts/bench-floor.ts.
 *
 * Env: BENCH_DURATION_S (5), BENCH_ROUNDS (3; fewer, never < 2, when the time budget would be
 * exceeded), BENCH_WARMUP_S (2), BENCH_CONNECTIONS (50), BENCH_ONLY (comma list of targets to measure,
 * e.g. `floor,gateway,gateway-cluster`; the others are not measured, the Cluster not started); diagnostics: BENCH_GATEWAY_LOG_LEVEL (warn;
 * `info` measures the per-request log line), BENCH_CPU_PROF_DIR (run the gateways with --cpu-prof into
 * that directory), BENCH_NODE_ARGS (extra node arguments for every gateway process, space-separated,
 * e.g. a V8 flag to compare; recorded in the JSON).
 */
import { execFileSync } from 'node:child_process'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { PRODUCTION_NODE_OPTIONS } from '../src/runtime.js'
import { MISSING_BINARIES_MESSAGE, type NodeProc } from '../test/helpers/topology.js'
import {
  cpuDelta, cpuSeconds, cpuSecondsOf, getCalls, killAllStartedSync, machineJiffies, onPath, processAgeMs, rssSampler, runWrk, say, stopChild
} from './bench-lib.js'
import { onlyTargets } from './bench-cluster.js'
import { aggregate, checkTargets, formatChecks, formatRows, isGateway, readSpread, TARGET_NAMES, type Run } from './bench-report.js'
import { cacheCounters, KEY_10K_PREFIX, KEY_GET, KEYS_10K, startTargets, VALUE_BYTES, type Launched } from './bench-targets.js'

// Counted from the start of `npm run bench` (the build, 20-70 s on a busy machine, included). 17
// target/ops: a round takes ~90 s at the default 5 s per run, the warm-up ~40 s, the setup ~25 s.
const HARD_LIMIT_MS = 420_000
/** No new round starts once the estimated end of that round would pass this (at least 2 rounds run). */
const ROUNDS_BUDGET_MS = 385_000
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
const ONLY = onlyTargets(process.env.BENCH_ONLY, TARGET_NAMES)

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

/** Everything started so far (bench-targets.ts records each process as it starts), stopped by cleanup. */
const launched: Launched = { children: [] }

let cleaning: Promise<void> | undefined
function cleanup (): Promise<void> {
  cleaning ??= (async () => {
    // In parallel: each gateway drains and closes its Redis connections (a WORKERS=2 primary forwards
    // the SIGTERM to its workers; stopChild also SIGKILLs, by pid, any worker it recorded still alive).
    await Promise.all(launched.children.map(c => stopChild(c).catch(() => {})))
    await launched.topo?.stop().catch(() => {})
    await launched.cluster?.stop().catch(() => {})
    if (launched.tmp !== undefined) await rm(launched.tmp, { recursive: true, force: true }).catch(() => {})
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
function versionOf (cmd: string, args: string[]): string {
  try { return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 3000 }).trim().split('\n')[0] ?? 'unknown' } catch (err) {
    const out = (err as { stdout?: string }).stdout ?? ''
    return out.trim().split('\n')[0] ?? 'unknown'
  }
}


/**
 * The targets in the order round `round` measures them: gateway-twin and gateway-cluster swap places
 * every other round, so neither is always the one measured right after the previous target (the
 * first gateway measured after another one's runs was the slower one in every run of session 6).
 */
function roundOrder<T extends { name: string }> (targets: readonly T[], round: number): readonly T[] {
  const a = targets.findIndex(t => t.name === 'gateway-twin')
  const b = targets.findIndex(t => t.name === 'gateway-cluster')
  if (round % 2 === 1 || a < 0 || b < 0) return targets
  const out = [...targets]
  ;[out[a], out[b]] = [out[b]!, out[a]!]
  return out
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

  const ready = await startTargets(launched, { gatewayLogLevel: GATEWAY_LOG_LEVEL, cpuProfDir: CPU_PROF_DIR, elapsed, cluster: ONLY === undefined || ONLY.has('gateway-cluster') || ONLY.has('gateway-twin') })
  const { topo, master, replicas, redisVersion: redisVer, gateways, idleRssMb } = ready
  const targets = ready.targets.filter(t => ONLY?.has(t.name) ?? true)
  if (ONLY !== undefined) say(`BENCH_ONLY: measuring ${targets.map(t => t.name).join(', ')}`)
  const redisCpu = (pids: number[]): number => pids.reduce((s, pid) => s + cpuSeconds(pid), 0)
  const opCount = targets.reduce((s, t) => s + t.ops.length, 0)

  if (WARMUP_S > 0) {
    for (const t of targets) for (const o of t.ops) await runWrk(t.base + o.path, o.script, WARMUP_S, CONNECTIONS)
    say(`[${elapsed()}] warm-up done (${WARMUP_S} s per target/op, ${opCount} target/ops, not recorded)`)
  }

  const runs: Run[] = []
  const firstRoundStart = Date.now()
  const spreadCounts = new Map<number, number>(replicas.map(r => [r.port, 0]))
  let masterGets = 0
  const getCallsOf = async (p: NodeProc): Promise<number> => {
    const c = topo.client(p.port)
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
    for (const t of roundOrder(targets, round)) {
      for (const o of t.ops) {
        const spread = t.name === 'gateway-nocache' && o.op === 'GET'
        const before = spread ? await Promise.all([master, ...replicas].map(getCallsOf)) : []
        const cache0 = t.cacheMetrics && o.op.startsWith('GET') ? await cacheCounters(t.base) : undefined
        const cpu0 = cpuSecondsOf(t.pids())
        const redis0 = redisCpu(t.redisPids)
        const mach0 = machineJiffies()
        const wall0 = process.hrtime.bigint()
        const sampler = rssSampler(t.pids, 100)
        const wrk = await runWrk(t.base + o.path, o.script, DURATION_S, CONNECTIONS)
        const rss = sampler.stop()
        const wall = Number(process.hrtime.bigint() - wall0) / 1e9
        const mach1 = machineJiffies()
        const cpu1 = cpuSecondsOf(t.pids())
        const redis1 = redisCpu(t.redisPids)
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
  say(`gateway = WORKERS=1 NEAR_CACHE=true; gateway-nocache = WORKERS=1 NEAR_CACHE=false; gateway-2w = WORKERS=2 NEAR_CACHE=true; gateway-twin = gateway with gateway-cluster's ops; gateway-cluster = gateway on a Redis Cluster. GET = one hot key; GET 10k keys = random key of ${KEYS_10K}.`)
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
      note: `the ${nproc} cores are shared by wrk, the server under test, the idle gateways, 3 redis-server, 3 redis-sentinel${launched.cluster === undefined ? '' : ', the 6 redis-server of the Cluster'} and the bench script`
    },
    settings: {
      durationS: DURATION_S,
      rounds: roundsDone,
      roundsRequested: ROUNDS,
      warmupS: WARMUP_S,
      wrk: { threads: 1, connections: CONNECTIONS, timeoutS: 2 },
      valueBytes: VALUE_BYTES,
      order: targets.map(t => `${t.name} (${t.ops.map(o => o.op).join(', ')})`).join(' -> ') + ', repeated each round (gateway-twin and gateway-cluster swap places in even rounds)',
      aggregation: 'median run by req/s per target/op (lower middle for an even count); errors summed over all runs; RSS = max over runs of the largest single process',
      gateway: { LOG_LEVEL: GATEWAY_LOG_LEVEL, EVENT_LOOP_MAX_DELAY_MS: '0', NODE_OPTIONS: PRODUCTION_NODE_OPTIONS, cpuProf: CPU_PROF_DIR !== undefined, nodeArgs: process.env.BENCH_NODE_ARGS ?? '', durability: 'replicated (default) and ?durability=none' },
      gatewayVariants: Object.fromEntries(gateways.map(g => [g.name, { env: g.env, ops: (targets.find(t => t.name === g.name)?.ops ?? []).map(o => o.op) }])),
      hotKey: KEY_GET,
      keys10k: { count: KEYS_10K, names: `${KEY_10K_PREFIX}0..${KEY_10K_PREFIX}${KEYS_10K - 1}`, valueBytes: VALUE_BYTES, populated: 'ioredis pipeline of SETs to the master, then WAIT for all replicas, before the gateways start', access: 'uniformly random key per request (wrk Lua request())' },
      webdis: { threads: 2, redis: 'current master' },
      only: ONLY === undefined ? 'all targets' : [...ONLY],
      cluster: launched.cluster === undefined ? 'not started' : { nodes: launched.cluster.nodes.length, layout: '3 masters + 3 replicas (test/helpers/cluster.ts), ACL users', gateway: 'gateway-cluster: as gateway (WORKERS=1, NEAR_CACHE=true), REDIS_CLUSTER_NODES; compared with gateway-twin (Sentinel mode, same ops, measured right before it)' }
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
