// Unit tests of pure logic: backoff delays, fault classification, read strategies.
import t from 'tap'
import { backoffDelay, backoffWithin } from '../src/retry.js'
import { isNodeFault } from '../src/redis/faults.js'
import { ReadRouter } from '../src/routing.js'
import type { ReplicaState } from '../src/topology.js'

t.test('backoff delays stay within the exponential ceiling (full jitter)', async t => {
  const o = { baseMs: 10, maxMs: 200 }
  for (let attempt = 0; attempt < 10; attempt++) {
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(attempt, o)
      t.ok(d >= 0 && d < Math.min(200, 10 * 2 ** attempt), `attempt ${attempt}: ${d}`, { diagnostic: false })
    }
  }
})

t.test('no retry is started that would end past the deadline', async t => {
  t.equal(await backoffWithin(5, Date.now() - 1, { baseMs: 10, maxMs: 100 }), false)
  t.equal(await backoffWithin(0, Date.now() + 1000, { baseMs: 1, maxMs: 1 }), true)
})

t.test('node faults are told apart from the user\'s own outcome', async t => {
  const reply = (m: string): Error => Object.assign(new Error(m), { name: 'ReplyError' })
  t.ok(isNodeFault(new Error('connect ECONNREFUSED 127.0.0.1:1')))
  t.ok(isNodeFault(reply('READONLY You can\'t write against a read only replica.')))
  t.ok(isNodeFault(reply('LOADING Redis is loading the dataset in memory')))
  t.ok(isNodeFault(reply('MASTERDOWN Link with MASTER is down')))
  t.ok(isNodeFault(reply('ERR Error running script: @user_script:1: READONLY You can\'t write')))
  t.notOk(isNodeFault(reply('WRONGTYPE Operation against a key holding the wrong kind of value')))
  t.notOk(isNodeFault(reply('ERR syntax error')))
})

const rep = (port: number, healthy = true): ReplicaState => ({
  key: `127.0.0.1:${port}`, host: '127.0.0.1', port, healthy, attached: healthy, lagBytes: 0, lagSeconds: 0, offset: 0, sentinelFlags: []
})

t.test('round-robin alternates over healthy replicas with closed breakers', async t => {
  const open = new Set(['127.0.0.1:4'])
  const r = new ReadRouter('round-robin', n => open.has(n))
  const replicas = [rep(1), rep(2), rep(3, false), rep(4)]
  const picks = Array.from({ length: 6 }, () => r.pick(replicas)?.port)
  t.same(picks, [1, 2, 1, 2, 1, 2])
})

t.test('no usable replica means null (the master answers)', async t => {
  const r = new ReadRouter('random', () => true)
  t.equal(r.pick([rep(1), rep(2)]), null)
  t.equal(new ReadRouter('random', () => false).pick([rep(1, false)]), null)
})

t.test('least-latency measures every replica, then prefers the fastest', async t => {
  const r = new ReadRouter('least-latency', () => false)
  const replicas = [rep(1), rep(2)]
  r.observe('127.0.0.1:1', 5)
  t.equal(r.pick(replicas)?.port, 2, 'the unmeasured replica goes first')
  r.observe('127.0.0.1:2', 1)
  t.equal(r.pick(replicas)?.port, 2)
  for (let i = 0; i < 20; i++) r.observe('127.0.0.1:2', 20)
  t.equal(r.pick(replicas)?.port, 1)
})

t.test('random spreads over all usable replicas', async t => {
  const r = new ReadRouter('random', () => false)
  const seen = new Set<number | undefined>()
  for (let i = 0; i < 200; i++) seen.add(r.pick([rep(1), rep(2), rep(3)])?.port)
  t.same([...seen].sort(), [1, 2, 3])
})
