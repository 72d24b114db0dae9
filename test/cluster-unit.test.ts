/** Pure logic of Cluster mode: CLUSTER NODES parsing, shards and slot table, the slot a command addresses. */
import calculateSlot from 'cluster-key-slot'
import t from 'tap'
import { askedOf, askOf } from '../src/cluster/ask.js'
import type { KvTopology } from '../src/cluster/shard.js'
import { CROSSSLOT, slotOf } from '../src/cluster/commands.js'
import { parseClusterNodes, rangesText, shardsOf, slotTable } from '../src/cluster/nodes.js'

const NODES = [
  'a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460',
  'a2 127.0.0.1:7002@17002 master - 0 1700000000000 2 connected 5461-10922 [5461->-b3]',
  'a3 127.0.0.1:7003@17003 master,fail - 1700000000000 1700000000000 3 disconnected',
  'b3 127.0.0.1:7006@17006 master - 0 1700000000000 7 connected 10923-16383',
  'b1 127.0.0.1:7004@17004 slave a1 0 1700000000000 1 connected',
  'b2 127.0.0.1:7005@17005 slave,fail? a2 0 1700000000000 2 connected',
  'c9 :0@0 master,noaddr - 0 0 0 disconnected',
  ''
].join('\n')

t.test('CLUSTER NODES: roles, flags, epochs, slots (migration markers skipped), unknown addresses skipped', async t => {
  const nodes = parseClusterNodes(NODES)
  t.same(nodes.map(n => n.id), ['a1', 'a2', 'a3', 'b3', 'b1', 'b2'], 'the node without an address is skipped')
  const a2 = nodes.find(n => n.id === 'a2')!
  t.same(a2.slots, [[5461, 10922]], 'a migrating marker is not a slot range')
  t.same(a2.migrating, [5461], 'it names a slot being migrated away')
  t.same(nodes.find(n => n.id === 'a1')!.migrating, [], 'none elsewhere')
  t.equal(nodes.find(n => n.id === 'a3')!.failed, true, 'fail')
  t.equal(nodes.find(n => n.id === 'b2')!.suspected, true, 'fail?')
  t.equal(nodes.find(n => n.id === 'b2')!.failed, false, 'fail? is not fail')
  t.equal(nodes.find(n => n.id === 'b1')!.masterId, 'a1', 'a replica names its master')
  t.equal(nodes.find(n => n.id === 'b3')!.epoch, 7)
})

t.test('shards: masters with slots, their replicas; a failed master without slots is none', async t => {
  const shards = shardsOf(parseClusterNodes(NODES))
  t.same(shards.map(s => [s.master.id, s.replicas.map(r => r.id)]), [['a1', ['b1']], ['a2', ['b2']], ['b3', []]])
  const table = slotTable(shards)
  t.equal(table[0], 0)
  t.equal(table[5461], 1)
  t.equal(table[16383], 2)
  t.ok(table.every(i => i >= 0), 'every slot served')
  t.same(rangesText([[0, 5460], [7, 7]]), ['0-5460', '7'])
})

t.test('shards: a master serving no slot yet (scale-out) is one, listed last by id; failing ones are none', async t => {
  const shards = shardsOf(parseClusterNodes([
    'e2 127.0.0.1:7008@17008 master - 0 0 0 connected',
    'a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 5461-16383',
    'e1 127.0.0.1:7007@17007 master - 0 0 0 connected [0-<-a2]',
    'a2 127.0.0.1:7002@17002 master - 0 0 2 connected 0-5460 [0->-e1]',
    'x1 127.0.0.1:7009@17009 master,fail? - 0 0 0 connected',
    'x2 127.0.0.1:7011@17011 master,fail - 0 0 0 disconnected',
    'r1 127.0.0.1:7010@17010 slave e1 0 0 0 connected'
  ].join('\n')))
  t.same(shards.map(s => [s.master.id, s.replicas.map(r => r.id)]), [['a2', []], ['a1', []], ['e1', ['r1']], ['e2', []]],
    'by first slot, then the empty masters by node id (one importing its first slot, with a replica); none flagged failing')
  const table = slotTable(shards)
  t.same([table[0], table[5461], table.every(i => i === 0 || i === 1)], [0, 1, true], 'the slot table names only the shards serving slots')
})

t.test('the slot of a command: its keys\' slot, CROSSSLOT across slots, keyless commands', async t => {
  t.equal(slotOf(['get', 'user:1']), calculateSlot('user:1'))
  t.equal(slotOf(['mset', '{u}a', '1', '{u}b', '2']), calculateSlot('u'), 'a hash tag puts keys on one slot')
  t.equal((slotOf(['mget', 'a', 'b']) as Error).message, CROSSSLOT, 'keys on different slots: CROSSSLOT')
  t.equal(slotOf(['eval', 'return 1', '0']), null, 'a script without keys runs on any shard')
  t.equal(slotOf(['eval', 'return 1', '1', 'k']), calculateSlot('k'), 'a script\'s keys route it')
  t.equal(slotOf(['ping']), null)
  t.match((slotOf(['scan', '0']) as Error).message, /names no key/, 'SCAN would see one shard: refused')
  t.match((slotOf(['no-such-command']) as Error).message, /cannot be located/)
  t.equal(CROSSSLOT, "CROSSSLOT Keys in request don't hash to the same slot", 'Redis\'s own words')
})

t.test('an ASK answer: its slot and node; other errors are none', async t => {
  const reply = (message: string): Error => Object.assign(new Error(message), { name: 'ReplyError' })
  t.same(askOf(reply('ASK 3999 127.0.0.1:7002')), { slot: 3999, node: { host: '127.0.0.1', port: 7002 } })
  t.same(askOf(reply('ASK 1 redis-a.internal:6379')), { slot: 1, node: { host: 'redis-a.internal', port: 6379 } }, 'a host name')
  t.equal(askOf(reply('MOVED 3999 127.0.0.1:7002')), null, 'MOVED is no ASK')
  t.equal(askOf(new Error('ASK 3999 127.0.0.1:7002')), null, 'only a Redis reply')
  t.equal(askOf(reply('TRYAGAIN Multiple keys request during rehashing of slot')), null)
})

t.test('the commands of a batch answered ASK, and where they go', async t => {
  const reply = (message: string): Error => Object.assign(new Error(message), { name: 'ReplyError' })
  const shard = {} as unknown as KvTopology
  const redirects = { askTarget: (err: unknown) => { const a = askOf(err); return a === null || a.node.port === 9 ? null : { node: a.node, shard } } }
  const ask = (port: number): Error => reply(`ASK 5 127.0.0.1:${port}`)
  t.same(askedOf([[null, 'OK'], [ask(7002), null], [reply('ERR x'), null], [ask(7002), null]], false, redirects)?.idx, [1, 3], 'a pipeline: the commands answered ASK')
  t.equal(askedOf([[null, 'OK'], [ask(7002), null]], false, undefined), null, 'Sentinel mode: none')
  t.equal(askedOf([[ask(7002), null], [ask(7003), null]], false, redirects), null, 'two importing nodes: retried the ordinary way')
  t.equal(askedOf([[ask(9), null]], false, redirects), null, 'a node that is no shard\'s master: retried')
  const aborted = reply('EXECABORT Transaction discarded because of previous errors.')
  t.same(askedOf([[null, 'OK'], [null, 'QUEUED'], [ask(7002), null], [aborted, null]], true, redirects)?.idx, [0, 1], 'a transaction: all of it')
  t.equal(askedOf([[null, 'OK'], [null, 'QUEUED'], [null, [1]]], true, redirects), null, 'a transaction that ran')
})
