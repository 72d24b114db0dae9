/**
 * src/pubsub/link.ts against a real Redis: what the link calls covered is subscribed on the server
 * at that moment. Found by test/pubsub.test.ts once in a full run: a client psubscribing while the
 * previous client's patterns were being dropped was confirmed during the PUNSUBSCRIBE and missed
 * the first message published after its confirmation.
 */
import t from 'tap'
import { Link } from '../src/pubsub/link.js'
import { topologyFor } from './helpers/topology.js'

const topo = await topologyFor(t)
const port = (await topo.master()).port

t.test('patterns being dropped are not covered; once covered again, a message published reaches the link', async t => {
  const sub = topo.client(port)
  const pub = topo.client(port)
  t.teardown(() => { sub.disconnect(); pub.disconnect() })
  await Promise.all([sub.ping(), pub.ping()])
  let patterns = true
  const link = new Link(`127.0.0.1:${port}`, sub, () => ({ channels: new Set<string>(), patterns }), ['*'])
  t.teardown(() => link.close())
  await link.sync()
  t.ok(link.covers([], true), 'patterns subscribed')

  // The last pattern client leaves (PUNSUBSCRIBE in flight), a new one arrives at once.
  patterns = false
  const dropping = link.sync()
  patterns = true
  t.notOk(link.covers([], true), 'not covered while the PUNSUBSCRIBE is in flight')
  void link.sync()
  await dropping
  for (let i = 0; i < 100 && !link.covers([], true); i++) await new Promise(resolve => setTimeout(resolve, 10))
  t.ok(link.covers([], true), 'covered again once the PSUBSCRIBE that follows was confirmed')

  const got = new Promise<string>(resolve => link.once('pmessage', (channel: Buffer, message: Buffer) => resolve(`${channel.toString()} ${message.toString()}`)))
  await pub.publish('link:a', 'first')
  const first = await Promise.race([got, new Promise<string>(resolve => setTimeout(() => resolve('nothing within 2 s'), 2000))])
  t.equal(first, 'link:a first', 'the first message published after the link covered the patterns reached it')
})
