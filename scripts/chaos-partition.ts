/**
 * `npm run chaos:partition`: issue 11's partition scenarios a-f under real network partitions (one
 * Linux network namespace per process, cuts made with iptables inside the namespaces), with
 * WRITE_DURABILITY's default and, when the gateway accepts it, `all`; prints the table computed from
 * the servers' final state. Root only (exit 2 otherwise). `npm run chaos:partition -- a e1` runs only
 * those scenarios; PARTITION_MODES=default skips the strict mode. Exit code 0 when it ran to the end
 * (the table is a measurement; test/partition.test.ts holds the assertions), 1 on an error.
 */
import { ROOT_REQUIRED } from './partition/netns.js'
import { formatDetails, formatTable, type Mode } from './partition/report.js'
import { installCleanup, runSuite } from './partition/run.js'
import { SCENARIOS, type ScenarioId } from './partition/scenarios.js'
import { isRoot } from './partition/shell.js'

const started = Date.now()
const say = (line: string): void => { process.stdout.write(`${line}\n`) }
const log = (line: string): void => { process.stderr.write(`[partition +${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`) }

if (!isRoot()) {
  say(`chaos:partition: ${ROOT_REQUIRED}`)
  process.exit(2)
}
const args = process.argv.slice(2)
const unknown = args.filter(a => !SCENARIOS.some(s => s.id === a))
if (unknown.length > 0) {
  say(`chaos:partition: unknown scenario ${unknown.join(', ')} (known: ${SCENARIOS.map(s => s.id).join(' ')})`)
  process.exit(2)
}
const ids = (args.length > 0 ? args : SCENARIOS.map(s => s.id)) as ScenarioId[]
const modes = ((process.env.PARTITION_MODES ?? '') === '' ? 'default,all' : process.env.PARTITION_MODES!).split(',').filter((m): m is Mode => m === 'default' || m === 'all')

installCleanup()
// Bounded: every scenario is bounded; this is the backstop (exit runs the cleanup hook).
const LIMIT_MS = 20 * 60_000
setTimeout(() => {
  say(`chaos:partition: still running after ${LIMIT_MS / 60_000} min: stopping`)
  process.exit(1)
}, LIMIT_MS).unref()

try {
  const rows = await runSuite(ids, modes, { short: false, log })
  say('')
  say(formatTable(rows))
  say('')
  say(formatDetails(rows))
  say('')
  say(`chaos:partition: ${rows.length} runs in ${((Date.now() - started) / 1000).toFixed(0)} s`)
  process.exit(0)
} catch (err) {
  say(`chaos:partition: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
  process.exit(1)
}
