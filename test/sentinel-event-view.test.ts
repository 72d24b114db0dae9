/** EventView: which sentinel events put the gateway's view behind, and until when (pure logic). */
import t from 'tap'
import { EventView } from '../src/sentinel/event-view.js'

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
  v.note(ev('+convert-to-slave'), Date.now())
  t.ok(v.behindGrowth, '+convert-to-slave holds too')
  v.note(ev('+slave'), Date.now() + 5)
  v.refreshed(Date.now() + 2)
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
