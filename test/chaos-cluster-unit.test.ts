/** Pure logic of the cluster chaos rows (test/helpers/chaos-cluster.ts): which slots a node serves. */
import t from 'tap'
import { servesSlot } from './helpers/chaos-cluster.js'

t.test('servesSlot: ranges and single slots count, migration markers do not', async t => {
  const slots = ['0-5460', '7000', '[5461->-b3]', '[5462-<-a1]']
  t.equal(servesSlot(slots, 0), true, 'first slot of a range')
  t.equal(servesSlot(slots, 5460), true, 'last slot of a range')
  t.equal(servesSlot(slots, 5461), false, 'a slot only named by a migrating marker')
  t.equal(servesSlot(slots, 5462), false, 'a slot only named by an importing marker')
  t.equal(servesSlot(slots, 7000), true, 'a single slot')
  t.equal(servesSlot(slots, 7001), false, 'next to a single slot')
  t.equal(servesSlot([], 0), false, 'a node without slots serves none')
})
