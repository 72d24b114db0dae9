/**
 * Real network partitions (issue 11), short run: scenarios a, e1 and f of `npm run chaos:partition`
 * (scripts/partition/), every process in its own network namespace, cuts made with iptables. Needs
 * root: skipped with the reason when not root, a failure when CI=true and not root.
 *
 * Everything is asserted: no acknowledged write lost in a and e1, e1 writable within 5 s of the heal,
 * f loses only what requirement 1 allows (writes acknowledged while the node promoted next was
 * flagged down), and no read of a key the final master holds answers 404.
 */
import t from 'tap'
import { ownLeftovers, ROOT_REQUIRED } from '../scripts/partition/netns.js'
import { formatDetails, formatTable, type Row } from '../scripts/partition/report.js'
import { runSuite } from '../scripts/partition/run.js'
import { isRoot } from '../scripts/partition/shell.js'

const notRoot = !isRoot()
if (notRoot && process.env.CI === 'true') {
  t.fail(`partition scenarios did not run: ${ROOT_REQUIRED} (CI=true, so this is a failure, not a skip)`)
} else if (notRoot) {
  t.comment(`partition scenarios skipped: ${ROOT_REQUIRED}`)
  t.test('partition scenarios a, e1, f', { skip: `not root: ${ROOT_REQUIRED}` }, async () => {})
} else {
  // Three scenarios of ~35 s each, plus startup: more than the suite's default per-file timeout.
  t.setTimeout(360_000)
  const started = Date.now()
  const rows = await runSuite(['a', 'e1', 'f'], ['default'], { short: true, log: l => { t.comment(l) } })
  t.comment(`\n${formatTable(rows)}\n\n${formatDetails(rows)}\n\nshort partition run: ${((Date.now() - started) / 1000).toFixed(0)} s`)
  const row = (id: string): Row => {
    const r = rows.find(x => x.scenario === id)
    if (r === undefined) throw new Error(`no result for scenario ${id}`)
    return r
  }
  const reads404 = (r: Row): number => r.reads404.eventual + r.reads404.strong

  t.test('a. M cut from R1 R2 S1-3 (not from G), healed: no acknowledged write lost', async t => {
    const r = row('a')
    t.ok(r.acked > 500, `the load ran: ${r.acked} writes acknowledged`)
    t.equal(r.converged, 'yes', 'the deployment converged after the heal')
    t.equal(r.lost, 0, 'every acknowledged key is on the final master')
    t.equal(reads404(r), 0, 'no read of an acknowledged key answered 404')
  })

  t.test('e1. M cannot receive from R1 R2: no acknowledged write lost', async t => {
    const r = row('e1')
    t.ok(r.acked > 100, `the load ran: ${r.acked} writes acknowledged`)
    t.equal(r.converged, 'yes', 'the deployment converged after the heal')
    t.equal(r.lost, 0, 'every acknowledged key is on the final master')
    t.ok(r.firstAckAfterHealMs !== null && r.firstAckAfterHealMs <= 5000,
      `writes acknowledged again within 5 s of the heal (first after ${r.firstAckAfterHealMs ?? 'never'} ms; nodes run with repl-timeout 5, repl-ping-replica-period 1)`)
    t.equal(r.reads5xx.strong, 0, 'strong reads of a master that answers the gateway do not fail')
    t.equal(reads404(r), 0, 'no read of an acknowledged key answered 404')
  })

  t.test('f. failover to R1, M back as master, {R1 R2} cut: numbers recorded', async t => {
    const r = row('f')
    t.comment(`f: ${r.acked} acked, ${r.failed} failed, ${r.lost} LOST (${r.lostWhileMasterFlaggedDown} of them acknowledged while ` +
      `${r.finalMaster} was flagged down), writes unavailable ${r.longestAckGapMs} ms, ${reads404(r)} 404s`)
    t.ok(r.acked > 100, `the load ran: ${r.acked} writes acknowledged`)
    t.equal(r.converged, 'yes', 'the deployment converged after the heal')
    // Requirement 1 allows losing only what was acknowledged while the node the sentinels promote
    // next was flagged down (its WAIT count could leave it out); default mode, by design.
    t.ok(r.lost <= r.lostWhileMasterFlaggedDown,
      `lost only writes acknowledged while the promoted node was flagged down (${r.lost} lost, ${r.lostWhileMasterFlaggedDown} while flagged down)`)
    // A read of such a lost key answers 404 (it is gone); a key the final master holds never does
    // (a resyncing replica or the near-cache would answer "missing" for it).
    t.equal(r.reads404OfKeptKeys, 0, 'no read of a key the final master holds answered 404')
  })

  t.test('the run removed every namespace, veth and bridge it made', async t => {
    t.same(await ownLeftovers(), [], 'no namespace or link of this process is left')
  })
}
