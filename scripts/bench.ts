/**
 * `npm run bench`: throughput and latency of the gateway against two references, in one bounded run
 * (< 4 min) on loopback:
 *
 *   floor    a bare Fastify server (scripts/bench-floor.ts): the Node HTTP floor
 *   gateway  `node dist/src/server.js` in front of a real Sentinel topology (1 master, 2 replicas,
 *            3 sentinels), LOG_LEVEL=warn, EVENT_LOOP_MAX_DELAY_MS=0; PUT replicated and durability=none
 *   webdis   Webdis (C, 2 threads) against the same master
 *
 * wrk (1 thread, 50 connections) hits each target with GET and PUT of 100-byte values, rounds
 * alternating the targets; each row is the median run by requests/s. Prints one table, the targets
 * from the issue (met / not met) and writes bench/results/latest.json. See bench/README.md.
 *
 * Env: BENCH_DURATION_S (5), BENCH_ROUNDS (3), BENCH_WARMUP_S (2), BENCH_CONNECTIONS (50);
 * diagnostics: BENCH_GATEWAY_LOG_LEVEL (warn; `info` measures the per-request log line),
 * BENCH_CPU_PROF_DIR (run the gateway with --cpu-prof into that directory).
 */
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { serverPath } from '../test/helpers/gateway.js'
import { freePorts } from '../test/helpers/topology-procs.js'
import { MISSING_BINARIES_MESSAGE, startTopology, type NodeProc, type Topology } from '../test/helpers/topology.js'
import {
  cpuSeconds, getCalls, killAllStartedSync, machineJiffies, onPath, processAgeMs, redisVersion, rssKb, rssSampler, runWrk, say,
  startChild, stopChild, waitReady, writeWrkScript, type Child
} from './bench-lib.js'
import {
  aggregate, checkTargets, formatChecks, formatRows, readSpread, type OpName, type Run, type TargetName
} from './bench-report.js'

// Counted from the start of `npm run bench` (the build, 20-70 s on a busy machine, included).
const HARD_LIMIT_MS = 235_000
/** No new round starts once the estimated end of that round would pass this (at least 2 rounds run). */
const ROUNDS_BUDGET_MS = 200_000
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
    for (const c of children.reverse()) await stopChild(c).catch(() => {})
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

interface Target { name: TargetName; child: Child; base: string; ops: Array<{ op: OpName; path: string; script: string }> }

async function main (): Promise<void> {
  const nproc = os.availableParallelism()
  say(`bench: started ${elapsed()} after npm run bench (build); ${nproc} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), node ${process.version}; ${ROUNDS} rounds x ${DURATION_S} s per target/op, wrk 1 thread ${CONNECTIONS} connections`)
  say(`NOTE: the ${nproc} cores are SHARED by the load generator (wrk), the server under test, the 3 redis-server and 3 redis-sentinel`)
  say('      processes and this script: absolute numbers are lower than on dedicated hardware; compare the ratios.')

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
  const mc = topo.client(master.port)
  const redisVer = await redisVersion(mc)
  await mc.quit()
  say(`[${elapsed()}] topology up: master :${master.port}, replicas ${replicas.map(r => `:${r.port}`).join(' ')}, REDIS_SENTINELS=${topo.sentinelList}`)

  const [gwPort, floorPort, webdisPort] = await freePorts(3)
  const basePath = { PATH: process.env.PATH ?? '', ...(process.env.HOME === undefined ? {} : { HOME: process.env.HOME }) }

  // Gateway: the real server process, no per-request log line, no load shedding.
  const nodeArgs = CPU_PROF_DIR === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF_DIR}`]
  const gateway = startChild('gateway', process.execPath, [...nodeArgs, serverPath()], {
    ...basePath,
    REDIS_SENTINELS: topo.sentinelList,
    REDIS_MASTER_NAME: topo.masterName,
    HOST: '127.0.0.1',
    PORT: String(gwPort),
    LOG_LEVEL: GATEWAY_LOG_LEVEL,
    EVENT_LOOP_MAX_DELAY_MS: '0'
  })
  children.push(gateway)
  const gw = `http://127.0.0.1:${gwPort}`
  await waitReady(gateway, 'gateway', 20_000, async () => (await http(`${gw}/readyz`)).status === 200)
  // Pre-populate the GET key through the gateway, then wait until replicas serve it.
  const put = await http(`${gw}/kv/${KEY_GET}`, { method: 'PUT', body: VALUE, headers: { 'content-type': 'application/octet-stream' } })
  if (put.status !== 201 && put.status !== 200) throw new Error(`gateway PUT of the GET key answered ${put.status}: ${put.body}`)
  await waitReady(gateway, 'gateway reads from replicas', 15_000, async () => {
    const seen = new Set<string>()
    for (let i = 0; i < 4; i++) {
      const r = await http(`${gw}/kv/${KEY_GET}`)
      if (r.status !== 200 || r.body !== VALUE) return false
      seen.add(r.headers.get('x-served-by') ?? '')
    }
    return seen.size === 1 && seen.has('replica')
  })
  const gatewayIdleRssMb = (rssKb(gateway.pid) ?? 0) / 1024

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
  say(`[${elapsed()}] gateway :${gwPort} (pid ${gateway.pid}), floor :${floorPort} (pid ${floor.pid}), webdis :${webdisPort} (pid ${webdis.pid}) ready`)

  // wrk Lua scripts (GET, PUT with a 100-byte body), and a sanity request on every target/op.
  const getLua = path.join(tmp, 'get.lua')
  const putLua = path.join(tmp, 'put.lua')
  await writeWrkScript(getLua, 'GET', VALUE_BYTES)
  await writeWrkScript(putLua, 'PUT', VALUE_BYTES)
  const targets: Target[] = [
    { name: 'floor', child: floor, base: fl, ops: [{ op: 'GET', path: `/kv/${KEY_GET}`, script: getLua }, { op: 'PUT', path: '/kv/bench-put', script: putLua }] },
    {
      name: 'gateway',
      child: gateway,
      base: gw,
      ops: [
        { op: 'GET', path: `/kv/${KEY_GET}`, script: getLua },
        { op: 'PUT', path: '/kv/bench-put', script: putLua },
        { op: 'PUT durability=none', path: '/kv/bench-put-none?durability=none', script: putLua }
      ]
    },
    { name: 'webdis', child: webdis, base: wd, ops: [{ op: 'GET', path: `/GET/${KEY_GET}`, script: getLua }, { op: 'PUT', path: '/SET/bench-webdis-put', script: putLua }] }
  ]
  for (const t of targets) {
    for (const o of t.ops) {
      const r = o.op === 'GET'
        ? await http(t.base + o.path)
        : await http(t.base + o.path, { method: 'PUT', body: VALUE, headers: { 'content-type': 'application/octet-stream' } })
      if (r.status < 200 || r.status > 299 || (o.op === 'GET' && !r.body.includes(VALUE))) {
        throw new Error(`sanity check ${t.name} ${o.op} ${o.path} answered ${r.status}: ${r.body.slice(0, 200)}`)
      }
    }
  }

  if (WARMUP_S > 0) {
    for (const t of targets) for (const o of t.ops) await runWrk(t.base + o.path, o.script, WARMUP_S, CONNECTIONS)
    say(`[${elapsed()}] warm-up done (${WARMUP_S} s per target/op, not recorded)`)
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
        const spread = t.name === 'gateway' && o.op === 'GET'
        const before = spread ? await Promise.all([master, ...replicas].map(getCallsOf)) : []
        const cpu0 = cpuSeconds(t.child.pid)
        const redis0 = redisCpu()
        const mach0 = machineJiffies()
        const wall0 = process.hrtime.bigint()
        const sampler = rssSampler(t.child.pid, 100)
        const wrk = await runWrk(t.base + o.path, o.script, DURATION_S, CONNECTIONS)
        const peakRssKb = sampler.stop()
        const wall = Number(process.hrtime.bigint() - wall0) / 1e9
        const mach1 = machineJiffies()
        const run: Run = {
          target: t.name,
          op: o.op,
          round,
          wrk,
          peakRssKb,
          targetCpuCores: (cpuSeconds(t.child.pid) - cpu0) / wall,
          redisCpuCores: (redisCpu() - redis0) / wall,
          machineBusyCores: mach1.total > mach0.total ? ((mach1.busy - mach0.busy) / (mach1.total - mach0.total)) * nproc : 0
        }
        runs.push(run)
        if (spread) {
          const after = await Promise.all([master, ...replicas].map(getCallsOf))
          masterGets += (after[0] ?? 0) - (before[0] ?? 0)
          replicas.forEach((r, i) => spreadCounts.set(r.port, (spreadCounts.get(r.port) ?? 0) + (after[i + 1] ?? 0) - (before[i + 1] ?? 0)))
        }
        say(`[${elapsed()}] round ${round} ${t.name.padEnd(7)} ${o.op.padEnd(18)} ${wrk.rps.toFixed(0).padStart(6)} req/s  p50 ${wrk.p50Ms.toFixed(2)} ms  p99 ${wrk.p99Ms.toFixed(2)} ms  errors ${wrk.errors}  RSS ${(peakRssKb / 1024).toFixed(1)} MB  cpu ${run.targetCpuCores.toFixed(2)} (redis ${run.redisCpuCores.toFixed(2)}, machine ${run.machineBusyCores.toFixed(2)}/${nproc})`)
      }
    }
    roundsDone++
  }

  const rows = aggregate(runs)
  const spread = readSpread(replicas.map(r => ({ port: r.port, gets: spreadCounts.get(r.port) ?? 0 })), masterGets)
  const gatewayPeakRssMb = Math.max(...rows.filter(r => r.target === 'gateway').map(r => r.peakRssMb))
  const checks = checkTargets(rows, gatewayPeakRssMb, spread)
  const gatewayLog = gateway.output().split('\n').filter(l => l.trim() !== '')
  const gatewayLogLines = gateway.lines()

  say('')
  say(`Results (each row: the median of ${roundsDone} runs by req/s; p50/p99/cpu from that run; errors = non-2xx + socket errors summed over all runs;`)
  say(`peak RSS = max VmRSS sampled every 100 ms; cpu cores = CPU seconds of the target process / wall seconds). ${VALUE_BYTES}-byte values.`)
  say(`NOTE: wrk, the server under test and all Redis processes share the same ${nproc} cores.`)
  for (const l of formatRows(rows)) say(l)
  say('')
  say(`Read spread over replicas during the gateway GET runs (INFO commandstats cmdstat_get): ${spread.replicas.map(r => `:${r.port} ${r.gets} (${(r.share * 100).toFixed(1)}%)`).join(', ')}; master ${spread.masterGets}`)
  say(`Gateway RSS idle after start: ${gatewayIdleRssMb.toFixed(1)} MB; gateway log lines at LOG_LEVEL=${GATEWAY_LOG_LEVEL} during the run: ${gatewayLogLines}`)
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
      note: `the ${nproc} cores are shared by wrk, the server under test, 3 redis-server, 3 redis-sentinel and the bench script`
    },
    settings: {
      durationS: DURATION_S,
      rounds: roundsDone,
      roundsRequested: ROUNDS,
      warmupS: WARMUP_S,
      wrk: { threads: 1, connections: CONNECTIONS, timeoutS: 2 },
      valueBytes: VALUE_BYTES,
      order: targets.map(t => `${t.name} (${t.ops.map(o => o.op).join(', ')})`).join(' -> ') + ', repeated each round',
      aggregation: 'median run by req/s per target/op (lower middle for an even count); errors summed over all runs; RSS = max',
      gateway: { LOG_LEVEL: GATEWAY_LOG_LEVEL, EVENT_LOOP_MAX_DELAY_MS: '0', cpuProf: CPU_PROF_DIR !== undefined, durability: 'replicated (default) and ?durability=none' },
      webdis: { threads: 2, redis: 'current master' }
    },
    rows,
    readSpread: spread,
    gatewayIdleRssMb: Math.round(gatewayIdleRssMb * 10) / 10,
    gatewayPeakRssMb,
    gatewayLogLines,
    gatewayLogSample: gatewayLog.slice(0, 5).map(l => l.slice(0, 400)),
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
