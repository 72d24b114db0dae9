/**
 * Chaos scenarios against a real Sentinel topology (test/helpers/topology.ts), each with its own
 * in-process gateway, each restoring the topology at the end. Each returns a ChaosRow whose `checks`
 * are the scenario's requirements (asserted by test/chaos.test.ts, turned into the exit code of
 * `npm run chaos`).
 *
 *   a. plannedFailover   SENTINEL FAILOVER under 20 writers; plain ioredis client for comparison
 *   b. killMaster        kill -9 of the master under write load, readers of older keys
 *   c. killSentinel      one sentinel SIGKILLed under PUT+GET load
 *   d. killReplicas      both replicas SIGKILLed
 *   e. freezeMaster      master SIGSTOPped (hung), then SIGCONT
 *   f. lyingSentinel     one sentinel names a replica as the master
 */
import { killMaster, plannedFailover, type FailoverOptions, type KillOptions } from './chaos-failover.js'
import { freezeMaster, killReplicas, killSentinel, lyingSentinel, type FreezeOptions } from './chaos-faults.js'
import { failedChecks, type ChaosRow, type ScenarioOptions } from './chaos-row.js'
import type { Topology } from './topology.js'

export { killMaster, plannedFailover, plainClientFailover } from './chaos-failover.js'
export { freezeMaster, killReplicas, killSentinel, lyingSentinel } from './chaos-faults.js'
export { failedChecks, type ChaosRow, type Check, type ScenarioOptions } from './chaos-row.js'

/** Lengths for `npm run chaos` (full) and the tap file (short). */
export interface ChaosPlan {
  a: FailoverOptions
  b: KillOptions
  c: ScenarioOptions
  d: ScenarioOptions
  e: FreezeOptions
  f: ScenarioOptions
}

export const FULL: ChaosPlan = {
  a: { durationMs: 20_000, writers: 20, failoverAtMs: 3000, plain: { durationMs: 20_000, writers: 20, failoverAtMs: 3000 } },
  b: { durationMs: 10_000, writers: 10, readers: 2, killAtMs: 2000 },
  c: { durationMs: 5000, writers: 5, readers: 2 },
  d: { durationMs: 7000, writers: 3, readers: 3 },
  e: { durationMs: 2000, writers: 5, readers: 2 },
  f: { durationMs: 4000, writers: 5 }
}

export const SHORT: ChaosPlan = {
  a: { durationMs: 16_000, writers: 20, failoverAtMs: 3000, plain: { durationMs: 8000, writers: 20, failoverAtMs: 2000 } },
  b: { durationMs: 7000, writers: 10, readers: 2, killAtMs: 2000 },
  c: { durationMs: 3000, writers: 5, readers: 2 },
  d: { durationMs: 6000, writers: 3, readers: 3 },
  e: { durationMs: 2000, writers: 5, readers: 2 },
  f: { durationMs: 3000, writers: 5 }
}

export const SCENARIOS: Array<{ id: keyof ChaosPlan; run: (topo: Topology, o: never) => Promise<ChaosRow> }> = [
  { id: 'a', run: plannedFailover },
  { id: 'b', run: killMaster },
  { id: 'c', run: killSentinel },
  { id: 'd', run: killReplicas },
  { id: 'e', run: freezeMaster },
  { id: 'f', run: lyingSentinel }
]

/** Runs the given scenarios one after the other against one topology. */
export async function runAll (topo: Topology, plan: ChaosPlan, log: (l: string) => void, only?: string[]): Promise<ChaosRow[]> {
  const rows: ChaosRow[] = []
  for (const s of SCENARIOS) {
    if (only !== undefined && !only.includes(s.id)) continue
    const started = Date.now()
    log(`--- scenario ${s.id} ---`)
    const row = await s.run(topo, { ...plan[s.id], log } as never)
    log(`scenario ${s.id} took ${Date.now() - started} ms, ${failedChecks(row).length} failed check(s)`)
    rows.push(row)
  }
  return rows
}

/** The result table (plain text, fixed-width columns), comparison rows included. */
export function formatTable (rows: ChaosRow[]): string {
  const head = ['scenario', 'requests', 'failures', 'acked writes lost', 'longest request (ms)', 'time to recover (ms)', 'result']
  const lines: string[][] = []
  for (const r of rows) {
    const bad = failedChecks(r).length
    lines.push([r.scenario, String(r.requests), String(r.failures), String(r.lostAcknowledgedWrites), String(r.longestRequestMs),
      r.recoveryMs === null ? '-' : String(r.recoveryMs), bad === 0 ? 'PASS' : `FAIL (${bad})`])
    const c = r.comparison
    if (c !== undefined) {
      lines.push([c.scenario, String(c.requests), String(c.failures), String(c.lostAcknowledgedWrites), String(c.longestRequestMs),
        c.recoveryMs === null ? '-' : String(c.recoveryMs), failedChecks(c).length === 0 ? 'reported' : 'ERROR'])
    }
  }
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map(l => l[i]!.length)))
  const fmt = (l: string[]): string => l.map((x, i) => i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!)).join(' | ')
  return [fmt(head), widths.map(w => '-'.repeat(w)).join('-|-'), ...lines.map(fmt)].join('\n')
}

/** Notes and failed checks of every row, one line each. */
export function formatDetails (rows: ChaosRow[]): string {
  const out: string[] = []
  for (const r of [...rows, ...rows.flatMap(x => x.comparison === undefined ? [] : [x.comparison])]) {
    for (const n of r.notes) out.push(`${r.scenario}: ${n}`)
    for (const c of r.checks) out.push(`${r.scenario}: ${c.ok ? 'ok  ' : 'FAIL'} ${c.name} (${c.detail})`)
  }
  return out.join('\n')
}
