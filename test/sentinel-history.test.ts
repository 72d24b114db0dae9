// Unit tests of the stale-promotion logic (src/sentinel/history.ts): plain data, no servers.
import t from 'tap'
import { AckHistory, historyContains, sharedOffset, type ReplHistory } from '../src/sentinel/history.js'

const NONE = '0000000000000000000000000000000000000000'
const id = (c: string): string => c.repeat(40)
const hist = (replid: string, masterReplOffset: number, replid2 = NONE, secondReplOffset = -1): ReplHistory =>
  ({ replid, masterReplOffset, replid2, secondReplOffset })

t.test('a history contains positions on its current id up to its offset, on its previous id below second_repl_offset', async t => {
  const promoted = hist(id('b'), 500, id('a'), 301) // held a's stream up to byte 300
  t.ok(historyContains(promoted, { replid: id('a'), offset: 300 }))
  t.notOk(historyContains(promoted, { replid: id('a'), offset: 301 }), 'second_repl_offset is one past the last byte held')
  t.ok(historyContains(promoted, { replid: id('b'), offset: 500 }))
  t.notOk(historyContains(promoted, { replid: id('b'), offset: 501 }))
  t.notOk(historyContains(promoted, { replid: id('c'), offset: 1 }))
  t.notOk(historyContains(hist(id('b'), 10), { replid: NONE, offset: 0 }), 'the all-zero id matches nothing')
})

t.test('a planned failover keeps the acknowledged position and moves it to the new history', async t => {
  const h = new AckHistory()
  t.equal(h.observe('A', hist(id('a'), 100)), null, 'the first master seen decides nothing')
  h.note('A', 150)
  h.note('A', 120)
  t.same(h.position, { node: 'A', replid: id('a'), offset: 150, replid2: NONE, secondReplOffset: -1, alsoIn: [] }, 'the highest offset is kept')
  t.equal(h.observe('A', hist(id('a'), 140)), null, 'an INFO read before the ack is not a loss')
  const v = h.observe('B', hist(id('b'), 150, id('a'), 151))
  t.equal(v?.atRisk, false)
  t.equal(v?.gap, 0)
  t.equal(v?.acknowledged?.offset, 150)
  t.equal(h.position?.replid, id('b'), 'the position now lives in the new master\'s history')
  t.equal(h.observe('B', hist(id('b'), 900, id('a'), 151)), null, 'decided once')
  // A chained failover B -> C with no write on B is checked against B's history.
  t.equal(h.observe('C', hist(id('c'), 160, id('b'), 161))?.atRisk, false)
})

t.test('scenario f: the old master promoted back lacks the writes acknowledged on R1', async t => {
  const h = new AckHistory()
  h.observe('M', hist(id('m'), 1000))
  h.note('M', 1000)
  // R1 promoted at M's byte 1000; writes acknowledged on R1 up to 5000.
  t.equal(h.observe('R1', hist(id('r'), 1000, id('m'), 1001))?.atRisk, false)
  h.note('R1', 5000)
  // M comes back as master of its own old history (a little divergent tail of its own).
  const v = h.observe('M', hist(id('m'), 1040))
  t.equal(v?.atRisk, true)
  t.equal(v?.gap, 4000, 'from R1\'s branch point (byte 1000) to the last ack (5000)')
  t.same(v?.acknowledged, { node: 'R1', replid: id('r'), offset: 5000, replid2: id('m'), secondReplOffset: 1001, alsoIn: [] })
  t.equal(h.position, null, 'reported once, then dropped')
  t.equal(h.observe('M', hist(id('m'), 1100)), null)
  // M promoted by REPLICAOF NO ONE instead: it shifted its own id; both came from m.
  const w = new AckHistory()
  w.observe('R1', hist(id('r'), 1000, id('m'), 1001))
  w.note('R1', 5000)
  const v2 = w.observe('M', hist(id('n'), 1040, id('m'), 1041))
  t.equal(v2?.atRisk, true)
  t.equal(v2?.gap, 4000)
})

t.test('a restarted master that lost its replication history is reported the same way', async t => {
  const h = new AckHistory()
  h.observe('A', hist(id('a'), 100))
  h.note('A', 800)
  const v = h.observe('A', hist(id('z'), 0))
  t.equal(v?.atRisk, true)
  t.equal(v?.gap, null, 'no shared id: the gap is unknown')
  // Restarted from an RDB saved at byte 500: it keeps a's history up to 500.
  const r = new AckHistory()
  r.observe('A', hist(id('a'), 100))
  r.note('A', 800)
  const v2 = r.observe('A', hist(id('y'), 500, id('a'), 501))
  t.equal(v2?.atRisk, true)
  t.equal(v2?.gap, 300)
  t.equal(sharedOffset(hist(id('y'), 500, id('a'), 501), { node: 'A', replid: id('a'), offset: 800, replid2: NONE, secondReplOffset: -1, alsoIn: [] }), 500)
})

t.test('a late ack on the old master after the switch is checked against the new one', async t => {
  const h = new AckHistory()
  h.observe('A', hist(id('a'), 100))
  h.note('A', 100)
  t.equal(h.observe('B', hist(id('b'), 100, id('a'), 101))?.atRisk, false)
  h.note('A', 130) // confirmed by A's replicas but B was promoted at 100
  const v = h.observe('B', hist(id('b'), 200, id('a'), 101))
  t.equal(v?.atRisk, true)
  t.equal(v?.gap, 30)
  t.equal(h.observe('X', hist(id('x'), 5))?.atRisk, false, 'a switch with nothing acknowledged since is not at risk')
  h.note('unknown', 5)
  t.equal(h.position, null, 'an ack on a node never read as master has no known history')
})

t.test('scenario f in strict mode: nothing acknowledged on R1, so M promoted back holds the last acknowledged write', async t => {
  const h = new AckHistory()
  h.observe('M', hist(id('m'), 1000))
  h.note('M', 1000)
  t.equal(h.observe('R1', hist(id('r'), 1000, id('m'), 1001))?.atRisk, false)
  t.same(h.position?.alsoIn, [id('m')], 'the position is known in both histories')
  // M promoted by REPLICAOF NO ONE, never synced from R1: it still holds m up to its own 1040.
  const v = h.observe('M', hist(id('n'), 1040, id('m'), 1041))
  t.equal(v?.atRisk, false, 'not reported: the write is in M\'s history')
  // A write acknowledged on R1 afterwards is only in R1's history.
  const w = new AckHistory()
  w.observe('M', hist(id('m'), 1000))
  w.note('M', 1000)
  w.observe('R1', hist(id('r'), 1000, id('m'), 1001))
  w.note('R1', 1200)
  t.same(w.position?.alsoIn, [], 'a later write drops the other histories')
  const v2 = w.observe('M', hist(id('n'), 1040, id('m'), 1041))
  t.equal(v2?.atRisk, true)
  t.equal(v2?.gap, 200)
})
