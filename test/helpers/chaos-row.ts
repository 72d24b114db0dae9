/**
 * The result row every chaos scenario returns, the requirement checks attached to it, and the
 * common restore step (restart what is dead, wait until the topology has converged).
 */
import type { Topology } from './topology.js'

/** One requirement of a scenario: met or not, with the numbers behind it. */
export interface Check { name: string; ok: boolean; detail: string }

export interface ChaosRow {
  scenario: string
  /** HTTP requests (or, for the plain client, SET commands) sent. */
  requests: number
  /** Requests that did not succeed (non-2xx, fetch error, wrong value). */
  failures: number
  /** Acknowledged writes not found on the (new) master afterwards. */
  lostAcknowledgedWrites: number
  longestRequestMs: number
  /** Scenario-specific time to recover (see notes), null when not applicable. */
  recoveryMs: number | null
  notes: string[]
  checks: Check[]
  /** Scenario a: the same failover with a plain ioredis sentinel client (reported, not checked). */
  comparison?: ChaosRow
}

export interface ScenarioOptions {
  /** Length of the load phase. */
  durationMs?: number
  writers?: number
  readers?: number
  /** Progress lines (t.comment in tap, stderr in the script). */
  log?: (line: string) => void
}

export function newRow (scenario: string): ChaosRow {
  return { scenario, requests: 0, failures: 0, lostAcknowledgedWrites: 0, longestRequestMs: 0, recoveryMs: null, notes: [], checks: [] }
}

export function check (row: ChaosRow, name: string, ok: boolean, detail: string): boolean {
  row.checks.push({ name, ok, detail })
  return ok
}

export const failedChecks = (row: ChaosRow): Check[] => row.checks.filter(c => !c.ok)

/** Runs a scenario body; an exception becomes a failed check instead of losing the row. */
export async function guarded (row: ChaosRow, what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn()
  } catch (err) {
    check(row, `${what} ran to the end`, false, err instanceof Error ? (err.stack ?? err.message) : String(err))
  }
}

/**
 * Brings the topology back: SIGCONT for the nodes given (those the scenario stopped), restart of every
 * node that is not alive, then waitConverged (strict: also until every sentinel's own view of the
 * replicas is current, so the next scenario's failover does not start from a stale view). Failures
 * become a check on `row`.
 */
export async function restore (topo: Topology, row: ChaosRow, log: (l: string) => void, stopped: Topology['redis'] = []): Promise<void> {
  const started = Date.now()
  await guarded(row, 'restore', async () => {
    for (const p of stopped) if (p.alive) await topo.kill(p, 'SIGCONT')
    for (const p of [...topo.redis, ...topo.sentinels]) {
      if (!p.alive) { log(`restarting ${p.role} :${p.port}`); await topo.restart(p) }
    }
    await topo.waitConverged(60_000, { strict: true })
  })
  log(`${row.scenario}: topology restored in ${Date.now() - started} ms`)
}
