/** EventView: which sentinel events put the gateway's view behind, and until when (pure logic). */
import t from 'tap'
import { EventView, grownReplica } from '../src/sentinel/event-view.js'

const ev = (channel: string, message = ''): { sentinel: string; channel: string; message: string } => ({ sentinel: 's:1', channel, message })

t.test('a node back from down holds until a refresh started after the event completes', async t => {
  const v = new EventView()
  t.notOk(v.behindGrowth, 'nothing noted: not behind')
  const at = Date.now()
  v.note(ev('-sdown', 'slave 10.0.0.1:6379 10.0.0.1 6379 @ m 10.0.0.2 6379'), at)
  t.ok(v.behindGrowth, 'behind after -sdown')
  v.refreshed(at - 1)
  t.ok(v.behindGrowth, 'a refresh that started before the event does not count')
  v.refreshed(at + 1)
  t.notOk(v.behindGrowth, 'a refresh that started after it does')
  // After that refresh's start (at + 1): Date.now() may still be `at` on a fast run.
  v.note(ev('+convert-to-slave'), at + 2)
  t.ok(v.behindGrowth, '+convert-to-slave holds too')
  v.note(ev('+slave'), at + 5)
  v.refreshed(at + 3)
  t.notOk(v.behindGrowth, '+slave does not hold (it lists the dead old master after every switch)')
  const old = new EventView()
  old.note(ev('-sdown'), Date.now() - 1500)
  t.notOk(old.behindGrowth, 'bounded: an event older than 1 s no longer holds without a refresh')
})

t.test('+switch-master holds writes to any other master until a refresh after it', async t => {
  const v = new EventView()
  const at = Date.now()
  v.note(ev('+switch-master', 'mymaster 127.0.0.1 7000 127.0.0.1 7001'), at)
  t.ok(v.behindSwitch('127.0.0.1:7000'), 'the old master: behind')
  t.notOk(v.behindSwitch('127.0.0.1:7001'), 'the master it names: not behind')
  t.notOk(v.behindSwitch(null), 'no master known: nothing to hold')
  v.refreshed(at + 1)
  t.notOk(v.behindSwitch('127.0.0.1:7000'), 'after a refresh the topology decides')
  const old = new EventView()
  old.note(ev('+switch-master', 'mymaster 127.0.0.1 7000 127.0.0.1 7001'), Date.now() - 6000)
  t.notOk(old.behindSwitch('127.0.0.1:7000'), 'bounded to 5 s')
})

t.test('a growth event names its replica, which a refresh that read the sentinels before it must not drop', async t => {
  t.equal(grownReplica(ev('-sdown', 'slave 10.0.0.1:6379 10.0.0.1 6379 @ m 10.0.0.2 6379')), '10.0.0.1:6379')
  t.equal(grownReplica(ev('+convert-to-slave', 'slave 127.0.0.1:45693 127.0.0.1 45693 @ mymaster 127.0.0.1 37449')), '127.0.0.1:45693')
  t.equal(grownReplica(ev('-sdown', 'master m 10.0.0.2 6379')), null, 'the master back: no replica')
  t.equal(grownReplica(ev('-sdown', 'sentinel 1a2b 10.0.0.9 26379 @ m 10.0.0.2 6379')), null, 'a sentinel back: no replica')
  t.equal(grownReplica(ev('+sdown', 'slave 10.0.0.1:6379 10.0.0.1 6379 @ m 10.0.0.2 6379')), null, '+sdown shrinks, never grows')
  t.equal(grownReplica(ev('+slave', 'slave 10.0.0.1:6379 10.0.0.1 6379 @ m 10.0.0.2 6379')), null, '+slave is no growth event (see above)')

  const v = new EventView()
  const at = Date.now()
  v.note(ev('-sdown', 'slave 10.0.0.1:6379 10.0.0.1 6379 @ m 10.0.0.2 6379'), at)
  t.ok(v.grewSince('10.0.0.1:6379', at - 5), 'a refresh started before the event: stale for that node')
  t.notOk(v.grewSince('10.0.0.1:6379', at + 5), 'a refresh started after it: not stale')
  t.notOk(v.grewSince('10.0.0.3:6379', at - 5), 'another node: not stale')
  v.refreshed(at + 5)
  t.notOk(v.grewSince('10.0.0.1:6379', at - 5), 'forgotten once a refresh started after it completed')
})
