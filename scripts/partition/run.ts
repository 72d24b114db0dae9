/**
 * Runs partition scenarios: one Lab (namespaces, bridge) per suite, a fresh deployment per scenario
 * and mode, load during the cuts and for a while after the heal, then convergence and the check of
 * every attempted key on every node. Cleanup runs in finally blocks, on SIGINT/SIGTERM and, as a
 * last resort, synchronously on process exit.
 */
import { ConfigError, loadConfig } from '../../src/config.js'
import { Deployment, killAllSync } from './deployment.js'
import { waitUntil } from '../../test/helpers/topology-procs.js'
import { acked, Load } from './load.js'
import { activeLabs, Lab, type NodeName } from './netns.js'
import { converged, keysOnNodes, SentinelWatch, Timeline } from './observe.js'
import { summarize, type Mode, type Row } from './report.js'
import { SCENARIOS, type Scenario, type ScenarioId } from './scenarios.js'
import { sleep } from './shell.js'

export interface RunOptions {
  /** Shorter cuts and load after the heal (the tap test). */
  short: boolean
  log: (line: string) => void
}

/** Load before the first cut and after the last heal. */
const BEFORE_MS = 3000
const AFTER_MS = { short: 8000, full: 11_000 }
/** Bound on the load phase of any scenario (d is the longest: ~30 s of cuts). */
const MAX_LOAD_MS = 120_000
const CONVERGE_MS = 60_000

/** WRITE_DURABILITY value of each mode, or why the gateway cannot run it. */
export function durabilityOf (mode: Mode): { value?: string; unsupported?: string } {
  if (mode === 'default') return {}
  try {
    loadConfig({ REDIS_SENTINELS: '127.0.0.1:26379', WRITE_DURABILITY: 'all' })
    return { value: 'all' }
  } catch (err) {
    if (err instanceof ConfigError) return { unsupported: 'not supported yet' }
    throw err
  }
}

let hooksInstalled = false
/** Kills our processes and removes our labs on exit, SIGINT and SIGTERM (once per process). */
export function installCleanup (): void {
  if (hooksInstalled) return
  hooksInstalled = true
  const sync = (): void => {
    killAllSync()
    for (const lab of [...activeLabs]) lab.destroySync()
  }
  process.on('exit', sync)
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.on(sig, () => {
      process.stderr.write(`partition: ${sig}: removing namespaces and processes\n`)
      sync()
      process.exit(code)
    })
  }
}

/** Runs `ids` in each mode (one Lab for all of them); unsupported modes give a row saying so. */
export async function runSuite (ids: ScenarioId[], modes: Mode[], opts: RunOptions): Promise<Row[]> {
  installCleanup()
  const lab = await Lab.create(opts.log)
  const rows: Row[] = []
  try {
    for (const mode of modes) {
      const d = durabilityOf(mode)
      for (const id of ids) {
        const sc = SCENARIOS.find(s => s.id === id)
        if (sc === undefined) throw new Error(`unknown scenario '${id}'`)
        if (d.unsupported !== undefined) {
          rows.push({ ...emptyRow(sc, mode), unsupported: d.unsupported })
          continue
        }
        rows.push(await runScenario(lab, sc, mode, d.value, opts))
      }
    }
  } finally {
    await lab.destroy()
  }
  return rows
}

function emptyRow (sc: Scenario, mode: Mode): Row {
  return {
    scenario: sc.id, title: sc.title, mode, acked: 0, failed: 0, lost: 0, lostWhileMasterFlaggedDown: 0, missingOnSomeNode: 0,
    failedButStored: 0, longestAckGapMs: 0, firstAckAfterHealMs: null, reads404: { eventual: 0, strong: 0 }, reads404OfKeptKeys: 0, wrongValues: 0,
    reads5xx: { eventual: 0, strong: 0 }, reads: 0, failures: {}, converged: 'not checked', finalMaster: '?', durationMs: 0, notes: [], details: []
  }
}

/** One scenario in one mode against a fresh deployment; the lab is healed whatever happens. */
export async function runScenario (lab: Lab, sc: Scenario, mode: Mode, durability: string | undefined, opts: RunOptions): Promise<Row> {
  const row = emptyRow(sc, mode)
  const log = (l: string): void => opts.log(`[${sc.id}/${mode}] ${l}`)
  const dep = await Deployment.start(lab, { log, ...(durability === undefined ? {} : { durability }) })
  const timeline = new Timeline(log)
  const watch = new SentinelWatch(dep, timeline, MAX_LOAD_MS + CONVERGE_MS)
  const load = new Load({ url: dep.gatewayUrl, token: dep.token, keyPrefix: `p:${sc.id}:${mode}`, maxDurationMs: MAX_LOAD_MS })
  try {
    watch.start()
    load.start()
    const loadStart = timeline.mark('load started')
    await sleep(BEFORE_MS)
    const healAt = await sc.act({ lab, dep, timeline, watch, short: opts.short, detail: l => row.details.push(l) })
    await sleep(opts.short ? AFTER_MS.short : AFTER_MS.full)
    await load.stop()
    const loadEnd = timeline.mark('load stopped')
    const out: { master?: NodeName } = {}
    try {
      await waitUntil('convergence', CONVERGE_MS, () => converged(dep, out), 200)
      row.converged = 'yes'
      timeline.mark(`converged on ${out.master ?? '?'}`)
    } catch (err) {
      row.converged = err instanceof Error ? err.message.replace(/^timed out after \d+ ms waiting for convergence: /, '') : String(err)
    }
    await watch.stop()
    await check(dep, load, watch, timeline, row, out.master)
    row.longestAckGapMs = load.longestAckGap(loadStart, loadEnd)
    row.firstAckAfterHealMs = load.firstAckAfter(healAt)
    row.details.push(...timeline.events.map(e => `${timeline.rel(e.at)} ${e.label}`))
    row.durationMs = Date.now() - timeline.t0
  } finally {
    await load.stop()
    await watch.stop()
    await lab.heal().catch(() => {})
    await dep.stop()
  }
  summarize(row)
  log(`acked ${row.acked}, failed ${row.failed}, LOST ${row.lost}, unavailable ${row.longestAckGapMs} ms, 404s ${row.reads404.eventual + row.reads404.strong}`)
  return row
}

/** Fills the counts from the load records and the nodes' final state. */
async function check (dep: Deployment, load: Load, watch: SentinelWatch, timeline: Timeline, row: Row, master: NodeName | undefined): Promise<void> {
  row.acked = load.writes.filter(acked).length
  row.failed = load.writes.length - row.acked
  for (const w of load.writes.filter(x => !acked(x))) {
    const k = `${w.status}${w.code === undefined ? '' : ` ${w.code}`}`
    row.failures[k] = (row.failures[k] ?? 0) + 1
  }
  row.reads = load.reads.length
  for (const r of load.reads) {
    const kind = r.strong ? 'strong' : 'eventual'
    if (r.status === 404) row.reads404[kind]++
    else if (r.status === 0 || r.status >= 500) row.reads5xx[kind]++
    if (r.wrongValue) row.wrongValues++
  }
  const final = master ?? 'm'
  row.finalMaster = master ?? 'unknown (m checked)'
  let present: Map<NodeName, Set<string>>
  try {
    present = await keysOnNodes(dep, load.writes.map(w => w.key))
  } catch (err) {
    row.notes.push(`final check failed: ${err instanceof Error ? err.message : String(err)}`)
    return
  }
  const onMaster = present.get(final) ?? new Set<string>()
  // Where each 404 of an acknowledged key came from: a key the final master holds was answered
  // "missing" by the read path (a resyncing replica, the near-cache); one it lacks was lost.
  const why = new Map<string, number>()
  for (const r of load.reads.filter(x => x.status === 404)) {
    if (onMaster.has(r.key)) row.reads404OfKeptKeys++
    const k = `${onMaster.has(r.key) ? 'key on final master' : 'key lost'} ${r.strong ? 'strong' : 'eventual'} ${r.servedBy ?? '?'}${r.cache === 'hit' ? ' cache-hit' : ''}`
    why.set(k, (why.get(k) ?? 0) + 1)
  }
  if (why.size > 0) row.notes.push(`404s: ${[...why].map(([k, n]) => `${n} ${k}`).join(', ')}`)
  const kept = load.reads.filter(x => x.status === 404 && onMaster.has(x.key))
  if (kept.length > 0) row.details.push(`404s of keys the final master holds, at: ${kept.slice(0, 12).map(x => `${timeline.rel(x.start)} ${x.strong ? 'strong' : x.servedBy ?? '?'}`).join(', ')}`)
  const lost = load.writes.filter(w => acked(w) && !onMaster.has(w.key))
  row.lost = lost.length
  // A write whose WAIT count was decided while the node was flagged down may leave it out:
  // flagged down at any time between the request and its answer.
  row.lostWhileMasterFlaggedDown = lost.filter(w => watch.downAt(final, w.start, w.end)).length
  row.missingOnSomeNode = load.writes.filter(w => acked(w) && [...present.values()].some(s => !s.has(w.key))).length
  row.failedButStored = load.writes.filter(w => !acked(w) && onMaster.has(w.key)).length
  if (lost.length > 0) {
    const first = Math.min(...lost.map(w => w.end))
    const last = Math.max(...lost.map(w => w.end))
    row.details.push(`the ${lost.length} lost writes were acknowledged between ${timeline.rel(first)} and ${timeline.rel(last)}`)
  }
}
