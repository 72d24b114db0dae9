/**
 * `npm run chaos`: every chaos scenario (test/helpers/chaos.ts) at full length against one local
 * Sentinel topology (restored between scenarios), then the cluster scenarios (g, h:
 * test/helpers/chaos-cluster.ts) against one local Redis Cluster, then a table of the results and the
 * plain ioredis comparison. Exit code 1 when any scenario breaks a requirement. Bounded: the whole run
 * is stopped after 270 s. `npm run chaos -- b g` runs only those scenarios; CHAOS_VERBOSE=1 logs the
 * topology.
 */
import { CLUSTER_FULL, runCluster } from '../test/helpers/chaos-cluster.js'
import { failedChecks, formatDetails, formatTable, FULL, runAll, type ChaosRow } from '../test/helpers/chaos.js'
import { startCluster, type Cluster } from '../test/helpers/cluster.js'
import { startTopology, type Topology } from '../test/helpers/topology.js'

const TOTAL_LIMIT_MS = 270_000
const started = Date.now()
const say = (line: string): void => { process.stdout.write(`${line}\n`) }
const log = (line: string): void => { process.stderr.write(`[chaos +${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`) }

const only = process.argv.slice(2).filter(a => /^[a-h]$/.test(a))
const wants = (ids: string): boolean => only.length === 0 || only.some(a => ids.includes(a))
const verbose = process.env.CHAOS_VERBOSE === '1'
let topo: Topology | undefined
let cluster: Cluster | undefined

let stopping: Promise<void> | undefined
const stop = async (code: number): Promise<never> => {
  stopping ??= Promise.all([topo?.stop(), cluster?.stop()]).then(() => {})
  await stopping
  process.exit(code)
}
process.on('SIGINT', () => { void stop(130) })
process.on('SIGTERM', () => { void stop(143) })
const watchdog = setTimeout(() => {
  say(`chaos: still running after ${TOTAL_LIMIT_MS / 1000} s: stopping (failure)`)
  void stop(1)
}, TOTAL_LIMIT_MS)

let code = 1
try {
  const rows: ChaosRow[] = []
  if (wants('abcdef')) {
    topo = await startTopology(verbose ? { log: l => log(`[topology] ${l}`) } : {})
    log(`topology up: REDIS_SENTINELS=${topo.sentinelList}`)
    rows.push(...await runAll(topo, FULL, log, only.length > 0 ? only : undefined))
    await topo.stop()
  }
  if (wants('gh')) {
    cluster = await startCluster(verbose ? { log: l => log(`[cluster] ${l}`) } : {})
    log(`cluster up: REDIS_CLUSTER_NODES=${cluster.seedList}`)
    rows.push(...await runCluster(cluster, CLUSTER_FULL, log, only.length > 0 ? only : undefined))
  }
  say('')
  say(formatTable(rows))
  const a = rows.find(r => r.comparison !== undefined)
  if (a?.comparison !== undefined) {
    const c = a.comparison
    say('')
    say(`plain ioredis sentinel client across a failover: ${c.requests - c.failures} SETs acknowledged, ${c.lostAcknowledgedWrites} of them lost; ` +
      `gateway: ${a.requests - a.failures} PUTs acknowledged, ${a.lostAcknowledgedWrites} lost`)
  }
  say('')
  say(formatDetails(rows))
  const broken = rows.flatMap((r): ChaosRow[] => r.comparison === undefined ? [r] : [r, r.comparison]).filter(r => failedChecks(r).length > 0)
  say('')
  say(broken.length === 0
    ? `chaos: all requirements met (${((Date.now() - started) / 1000).toFixed(1)} s)`
    : `chaos: requirements broken in ${broken.map(r => r.scenario).join(', ')} (${((Date.now() - started) / 1000).toFixed(1)} s)`)
  code = broken.length === 0 ? 0 : 1
} catch (err) {
  say(`chaos: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
} finally {
  clearTimeout(watchdog)
}
await stop(code)
