/**
 * `npm run chaos`: every chaos scenario (test/helpers/chaos.ts) at full length against one local
 * Sentinel topology (restored between scenarios), then a table of the results and the plain ioredis
 * comparison. Exit code 1 when any scenario breaks a requirement. Bounded: the whole run is stopped
 * after 210 s. `npm run chaos -- b e` runs only those scenarios; CHAOS_VERBOSE=1 logs the topology.
 */
import { failedChecks, formatDetails, formatTable, FULL, runAll, type ChaosRow } from '../test/helpers/chaos.js'
import { startTopology } from '../test/helpers/topology.js'

const TOTAL_LIMIT_MS = 210_000
const started = Date.now()
const say = (line: string): void => { process.stdout.write(`${line}\n`) }
const log = (line: string): void => { process.stderr.write(`[chaos +${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`) }

const only = process.argv.slice(2).filter(a => /^[a-f]$/.test(a))
const topo = await startTopology(process.env.CHAOS_VERBOSE === '1' ? { log: l => log(`[topology] ${l}`) } : {})
log(`topology up: REDIS_SENTINELS=${topo.sentinelList}`)

let stopping: Promise<void> | undefined
const stop = async (code: number): Promise<never> => {
  stopping ??= topo.stop()
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
  const rows = await runAll(topo, FULL, log, only.length > 0 ? only : undefined)
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
