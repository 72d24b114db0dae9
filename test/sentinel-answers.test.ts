// Unit tests of the pure decision logic over sentinel answers (no I/O, plain data).
import t from 'tap'
import { chooseMaster, eventConcerns, replicaVerdicts, type SentinelAnswer } from '../src/sentinel/answers.js'

const replica = (port: number, flags = 'slave', link = 'ok'): SentinelAnswer['replicas'][number] =>
  ({ host: '127.0.0.1', port, flags: flags.split(','), linkOk: link === 'ok', roleReported: 'slave' })
const answer = (sentinel: string, port: number, epoch: number, replicas = [replica(2), replica(3)], flags = 'master'): SentinelAnswer =>
  ({ sentinel, master: { host: '127.0.0.1', port }, epoch, masterFlags: flags.split(','), replicas })

t.test('the master named with the highest config epoch wins, even when outnumbered', async t => {
  const chosen = chooseMaster([answer('s1', 1, 3), answer('s2', 1, 3), answer('s3', 2, 4)])
  t.equal(chosen?.master.port, 2)
  t.equal(chosen?.epoch, 4)
  t.equal(chosen?.agreeing.length, 1)
})

t.test('with equal epochs the address named most often wins', async t => {
  const chosen = chooseMaster([answer('s1', 7, 2), answer('s2', 1, 2), answer('s3', 1, 2)])
  t.equal(chosen?.master.port, 1)
  t.equal(chosen?.agreeing.length, 2)
})

t.test('no answers means no master', async t => {
  t.equal(chooseMaster([]), null)
})

t.test('a replica is down only when a majority of the sentinels listing it say so', async t => {
  const one = replicaVerdicts(chooseMaster([
    answer('s1', 1, 0, [replica(2, 'slave,s_down'), replica(3)]),
    answer('s2', 1, 0, [replica(2), replica(3)]),
    answer('s3', 1, 0, [replica(2), replica(3)])
  ])!)
  t.equal(one.find(r => r.port === 2)?.downByMajority, false, 'one sentinel alone does not lower the count')
  const two = replicaVerdicts(chooseMaster([
    answer('s1', 1, 0, [replica(2, 'slave,s_down'), replica(3)]),
    answer('s2', 1, 0, [replica(2, 'slave,s_down,disconnected'), replica(3)]),
    answer('s3', 1, 0, [replica(2), replica(3)])
  ])!)
  t.equal(two.find(r => r.port === 2)?.downByMajority, true)
  t.equal(two.find(r => r.port === 3)?.downByMajority, false)
})

t.test('only events about our master set are taken', async t => {
  t.ok(eventConcerns('+switch-master', 'mymaster 127.0.0.1 1 127.0.0.1 2', 'mymaster'))
  t.notOk(eventConcerns('+switch-master', 'other 127.0.0.1 1 127.0.0.1 2', 'mymaster'))
  t.ok(eventConcerns('+try-failover', 'master mymaster 127.0.0.1 1', 'mymaster'))
  t.ok(eventConcerns('+sdown', 'slave 127.0.0.1:2 127.0.0.1 2 @ mymaster 127.0.0.1 1', 'mymaster'))
  t.notOk(eventConcerns('+sdown', 'slave 127.0.0.1:2 127.0.0.1 2 @ other 127.0.0.1 1', 'mymaster'))
})
