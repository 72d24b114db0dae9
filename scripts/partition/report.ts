/**
 * The result of one scenario in one durability mode, and the table issue 11 asks for, with the
 * default mode and WRITE_DURABILITY=all side by side.
 */

export type Mode = 'default' | 'all'

export interface Row {
  scenario: string
  title: string
  mode: Mode
  /** Set when the mode could not run (e.g. 'not supported yet'); the numbers are then 0. */
  unsupported?: string
  acked: number
  failed: number
  /** Acknowledged keys missing (or with another value) on the final master. */
  lost: number
  /** Of the lost, those acknowledged while the sentinels flagged the final master down. */
  lostWhileMasterFlaggedDown: number
  /** Acknowledged keys missing on at least one node (final master or replica). */
  missingOnSomeNode: number
  /** Failed (non-2xx) writes that are on the final master anyway. */
  failedButStored: number
  /** Longest stretch of the load phase without an acknowledged write. */
  longestAckGapMs: number
  /** From the last heal to the first acknowledgement after it (null: none). */
  firstAckAfterHealMs: number | null
  /** Reads of acknowledged keys answered 404: eventual and strong. */
  reads404: { eventual: number; strong: number }
  /** Of those, reads of keys the final master holds (the read path's fault, not a loss). */
  reads404OfKeptKeys: number
  /** Reads answered 200 with another value. */
  wrongValues: number
  /** Reads answered 5xx (or not at all): eventual and strong. */
  reads5xx: { eventual: number; strong: number }
  reads: number
  /** Failed writes by status/code, e.g. "504 GW_ERR_WRITE_OUTCOME_UNKNOWN: 12". */
  failures: Record<string, number>
  /** Sentinels converged (one master, replicas attached and caught up) after the heal. */
  converged: string
  finalMaster: string
  durationMs: number
  /** Short notes for the table. */
  notes: string[]
  /** Timeline and probes, printed under the table. */
  details: string[]
}

const n = (x: number): string => x.toLocaleString('en-US')
const s = (ms: number | null): string => ms === null ? 'never' : `${(ms / 1000).toFixed(1)} s`

function cells (r: Row | undefined): string[] {
  if (r === undefined) return ['', '', '', '', '']
  if (r.unsupported !== undefined) return [r.unsupported, '', '', '', '']
  return [n(r.acked), n(r.failed), `**${n(r.lost)}**`, s(r.longestAckGapMs), n(r.reads404.eventual + r.reads404.strong)]
}

/** Markdown table: one line per scenario, the default mode then WRITE_DURABILITY=all. */
export function formatTable (rows: Row[]): string {
  const ids = [...new Set(rows.map(r => r.scenario))]
  const head = ['scenario', 'acked', 'failed', 'acked but LOST', 'writes unavailable', '404s of acked keys',
    'all: acked', 'all: failed', 'all: LOST', 'all: unavailable', 'all: 404s', 'notes']
  const lines = [`| ${head.join(' | ')} |`, `|---|${head.slice(1, -1).map(() => '---:').join('|')}|---|`]
  for (const id of ids) {
    const d = rows.find(r => r.scenario === id && r.mode === 'default')
    const a = rows.find(r => r.scenario === id && r.mode === 'all')
    const title = (d ?? a)?.title ?? ''
    const notes = [...(d?.notes ?? []), ...(a?.unsupported === undefined ? (a?.notes ?? []).map(x => `all: ${x}`) : [])]
    lines.push(`| ${id}. ${title} | ${[...cells(d), ...cells(a)].join(' | ')} | ${notes.join('; ')} |`)
  }
  return lines.join('\n')
}

/** Short notes computed from a finished row (the scenario adds its own before). */
export function summarize (r: Row): void {
  if (r.lost > 0) r.notes.push(`${n(r.lostWhileMasterFlaggedDown)} of the lost were acknowledged while ${r.finalMaster} was flagged down`)
  if (r.missingOnSomeNode > r.lost) r.notes.push(`${n(r.missingOnSomeNode)} acked keys missing on some node`)
  r.notes.push(`first ack after heal ${s(r.firstAckAfterHealMs)}`)
  const e5 = r.reads5xx.eventual + r.reads5xx.strong
  if (e5 > 0) r.notes.push(`reads failed: ${r.reads5xx.eventual} eventual, ${r.reads5xx.strong} strong of ${n(r.reads)}`)
  if (r.reads404.strong > 0) r.notes.push(`${r.reads404.strong} of the 404s were strong reads`)
  if (r.wrongValues > 0) r.notes.push(`${r.wrongValues} reads answered another value`)
  if (r.failedButStored > 0) r.notes.push(`${n(r.failedButStored)} failed PUTs stored anyway`)
  if (r.converged !== 'yes') r.notes.push(`not converged: ${r.converged}`)
}

/** Everything else: per row the failures by code, the timeline and the probes. */
export function formatDetails (rows: Row[]): string {
  return rows.filter(r => r.unsupported === undefined).map(r => [
    `--- ${r.scenario} (${r.mode}) ${r.title}: ${(r.durationMs / 1000).toFixed(0)} s, final master ${r.finalMaster}, ` +
      `${n(r.reads)} reads; failed PUTs: ${Object.entries(r.failures).map(([k, v]) => `${k} x${v}`).join(', ') || 'none'}`,
    ...r.details.map(d => `  ${d}`)
  ].join('\n')).join('\n')
}
