/**
 * The targets of `npm run bench` (scripts/bench.ts), started and made ready: the Sentinel topology,
 * the 10 000 keys of "GET 10k keys" (written to the master, WAIT for the replicas), the gateway
 * variants (each must answer the hot key from a replica / its near-cache; "gateway-cluster" in front of
 * a Redis Cluster, scripts/bench-cluster.ts), the floor, Webdis, the wrk
 * Lua scripts, and one sanity request per target/op. Everything started is recorded in the caller's
 * `Launched` as soon as it exists, so the caller can stop it (by pid) even when a later step fails.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { mkdtemp, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { PRODUCTION_NODE_OPTIONS } from '../src/runtime.js'
import { serverPath } from '../test/helpers/gateway.js'
import { freePorts } from '../test/helpers/topology-procs.js'
import { startTopology, type NodeProc, type Topology } from '../test/helpers/topology.js'
import type { Cluster } from '../test/helpers/cluster.js'
import { clusterRedisEnv, startBenchCluster } from './bench-cluster.js'
import { processTree, redisVersion, rssKb, say, startChild, waitReady, writeWrkScript, type Child } from './bench-lib.js'
import type { OpName, TargetName } from './bench-report.js'

export const VALUE_BYTES = 100
export const VALUE = 'v'.repeat(VALUE_BYTES)
/** The one hot key of "GET". */
export const KEY_GET = 'bench-get'
export const KEYS_10K = 10_000
export const KEY_10K_PREFIX = 'bench-k-'
const floorScript = fileURLToPath(new URL('./bench-floor.js', import.meta.url))

export interface Target {
  name: TargetName
  child: Child
  base: string
  /** The target's processes now: the child and its direct children (cluster workers). */
  pids: () => number[]
  /** The Redis processes behind it (Sentinel topology or Cluster nodes; none for floor). */
  redisPids: number[]
  ops: Array<{ op: OpName; path: string; script: string }>
  /** Scrape near-cache hits/misses from /metrics around each GET run (single-process gateways with the cache). */
  cacheMetrics: boolean
}

/** `cluster`: in front of the Redis Cluster instead of the Sentinel topology. */
interface Variant { name: TargetName; env: { WORKERS: string; NEAR_CACHE: string }; workers: number; cache: boolean; cluster?: true; twin?: true }
const VARIANTS: Variant[] = [
  { name: 'gateway', env: { WORKERS: '1', NEAR_CACHE: 'true' }, workers: 1, cache: true },
  { name: 'gateway-nocache', env: { WORKERS: '1', NEAR_CACHE: 'false' }, workers: 1, cache: false },
  { name: 'gateway-2w', env: { WORKERS: '2', NEAR_CACHE: 'true' }, workers: 2, cache: true },
  // Issue 16: the default gateway (1 process, near-cache) in Cluster mode, compared with gateway-twin:
  // the same gateway in Sentinel mode, running the same ops right before it in each round.
  { name: 'gateway-twin', env: { WORKERS: '1', NEAR_CACHE: 'true' }, workers: 1, cache: true, twin: true },
  { name: 'gateway-cluster', env: { WORKERS: '1', NEAR_CACHE: 'true' }, workers: 1, cache: true, cluster: true }
]
export interface Gateway extends Variant { child: Child; port: number; base: string }

/** What the caller stops on the way out (filled in as things start). */
export interface Launched { topo?: Topology; cluster?: Cluster; tmp?: string; children: Child[] }

export interface Targets {
  topo: Topology
  master: NodeProc
  replicas: NodeProc[]
  redisVersion: string
  gateways: Gateway[]
  /** In measuring order: floor, the gateway variants, webdis. */
  targets: Target[]
  /** Max VmRSS of one process of each gateway variant, right after it is ready (MB, 1 decimal). */
  idleRssMb: Record<string, number>
}

const http = async (url: string, init?: RequestInit): Promise<{ status: number; body: string; headers: Headers }> => {
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(3000) })
  return { status: r.status, body: await r.text(), headers: r.headers }
}

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
export async function cacheCounters (base: string): Promise<{ hits: number; misses: number } | undefined> {
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

export async function startTargets (
  launched: Launched,
  opts: { gatewayLogLevel: string; cpuProfDir: string | undefined; elapsed: () => string; cluster: boolean }
): Promise<Targets> {
  const { elapsed } = opts
  const tmp = launched.tmp = await mkdtemp(path.join(os.tmpdir(), 'skv-bench-'))
  // The Cluster (when asked for) starts while the Sentinel topology does.
  const clusterStart = opts.cluster ? startBenchCluster(elapsed).then(c => { launched.cluster = c; return c }) : undefined
  clusterStart?.catch(() => {})
  const topo = launched.topo = await startTopology()
  const cluster = await clusterStart
  const master = await topo.masterProc()
  const replicas = topo.redis.filter(r => r !== master)
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

  const variants = VARIANTS.filter(v => (v.cluster !== true && v.twin !== true) || cluster !== undefined)
  const ports = await freePorts(variants.length + 2)
  const floorPort = ports[variants.length] as number
  const webdisPort = ports[variants.length + 1] as number
  const basePath = { PATH: process.env.PATH ?? '', ...(process.env.HOME === undefined ? {} : { HOME: process.env.HOME }) }

  // Gateways: the real server process, one per variant, no per-request log line, no load shedding.
  const nodeArgs = [...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean), ...(opts.cpuProfDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`])]
  const gateways = variants.map((v, i): Gateway => {
    const port = ports[i] as number
    const child = startChild(v.name, process.execPath, [...nodeArgs, serverPath()], {
      ...basePath,
      ...(v.cluster === true && cluster !== undefined
        ? clusterRedisEnv(cluster)
        : { REDIS_SENTINELS: topo.sentinelList, REDIS_MASTER_NAME: topo.masterName }),
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: opts.gatewayLogLevel,
      EVENT_LOOP_MAX_DELAY_MS: '0',
      // The heap flags the Dockerfile runs the gateway with (RSS vs throughput: src/runtime.ts).
      NODE_OPTIONS: PRODUCTION_NODE_OPTIONS,
      ...v.env
    })
    launched.children.push(child)
    return { ...v, child, port, base: `http://127.0.0.1:${port}` }
  })
  await Promise.all(gateways.map(g => waitReady(g.child, g.name, 30_000, async () =>
    (await http(`${g.base}/readyz`)).status === 200 && processTree(g.child).length - 1 >= (g.workers > 1 ? g.workers : 0))))
  const gw = gateways[0]!
  // The hot key, written through the default gateway; then every gateway must answer it from a replica
  // (cache variants: from the near-cache, x-cache: hit, on every worker after a first miss each).
  // (In Cluster mode: written through the cluster gateway, to the shard of its slot.)
  for (const g of [gw, ...gateways.filter(g => g.cluster === true)]) {
    const put = await http(`${g.base}/kv/${KEY_GET}`, { method: 'PUT', body: VALUE, headers: { 'content-type': 'application/octet-stream' } })
    if (put.status !== 201 && put.status !== 200) throw new Error(`${g.name} PUT of the GET key answered ${put.status}: ${put.body}`)
  }
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
  launched.children.push(floor)
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
  launched.children.push(webdis)
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
  const opsOf = (g: Gateway): Target['ops'] => {
    const get = { op: 'GET' as const, path: `/kv/${KEY_GET}`, script: getLua }
    const get10k = { op: 'GET 10k keys' as const, path: `/kv/${KEY_10K_PREFIX}0`, script: get10kGw }
    const putOp = { op: 'PUT' as const, path: '/kv/bench-put', script: putLua }
    const putNone = { op: 'PUT durability=none' as const, path: '/kv/bench-put-none?durability=none', script: putLua }
    if (g.name === 'gateway') return [get, get10k, putOp, putNone]
    if (g.name === 'gateway-nocache') return [get]
    if (g.name === 'gateway-cluster' || g.name === 'gateway-twin') return [get, putOp]
    return [get, get10k, putOp]
  }
  const sentinelRedis = topo.redis.map(r => r.pid)
  const clusterRedis = cluster?.nodes.map(n => n.pid) ?? []
  const targets: Target[] = [
    { name: 'floor', child: floor, base: fl, pids: () => [floor.pid], redisPids: [], cacheMetrics: false, ops: [{ op: 'GET', path: `/kv/${KEY_GET}`, script: getLua }, { op: 'PUT', path: '/kv/bench-put', script: putLua }] },
    ...gateways.map((g): Target => ({ name: g.name, child: g.child, base: g.base, pids: () => processTree(g.child), redisPids: g.cluster === true ? clusterRedis : sentinelRedis, cacheMetrics: g.cache && g.workers === 1, ops: opsOf(g) })),
    {
      name: 'webdis',
      child: webdis,
      base: wd,
      pids: () => [webdis.pid],
      redisPids: sentinelRedis,
      cacheMetrics: false,
      ops: [
        { op: 'GET', path: `/GET/${KEY_GET}`, script: getLua },
        { op: 'GET 10k keys', path: `/GET/${KEY_10K_PREFIX}0`, script: get10kWd },
        { op: 'PUT', path: '/SET/bench-webdis-put', script: putLua }
      ]
    }
  ]
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
  return { topo, master, replicas, redisVersion: redisVer, gateways, targets, idleRssMb }
}
