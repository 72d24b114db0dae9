// Subscription streams through the loss of the subscriber's replica and a SENTINEL FAILOVER of
// the real topology: each time the gateway subscribes again by itself, every stream gets one
// `gap` event (Redis pub/sub is at-most-once), messages published after it arrive, and the
// topology never holds more than one subscriber connection of the gateway.
import { Redis as Upstash } from '@upstash/redis'
import t from 'tap'
import { startInProcess, untilSettled } from './helpers/gateway.js'
import { dropSilentConnections, subscriberConnections, until } from './helpers/pubsub.js'
import { sse, type SseClient } from './helpers/sse.js'
import { topologyFor } from './helpers/topology.js'

const TOKEN = 'pubsub-failover-token-1'

t.test('streams resume after a replica loss and a failover, each time with a gap event', async (t) => {
  const topo = await topologyFor(t)
  const { url, app } = await startInProcess(t, topo, { AUTH_TOKENS: `${TOKEN}:rwp` })
  dropSilentConnections(t, app.server)
  await untilSettled(app)
  const redis = new Upstash({ url, token: TOKEN, retry: false })
  const auth = { authorization: `Bearer ${TOKEN}` }
  const plain = await sse(`${url}/subscribe/fo`, auth)
  const pattern = await sse(`${url}/psubscribe/fo*`, auth, 'GET')
  t.teardown(() => { plain.close(); pattern.close() })
  await plain.waitFor(d => d === 'subscribe,fo,1')
  await pattern.waitFor(d => d === 'psubscribe,fo*,1')

  /** Publishes `m` through the gateway (retrying while it answers 503 during the switch) until both streams have it. */
  const roundTrip = async (m: string, ms = 20_000): Promise<void> => {
    const deadline = Date.now() + ms
    for (;;) {
      try {
        await redis.publish('fo', m)
        break
      } catch (err) {
        if (Date.now() > deadline) throw err
        await new Promise(resolve => setTimeout(resolve, 100))
      }
    }
    await plain.waitFor(d => d === `message,fo,${m}`, Math.max(1000, deadline - Date.now()), `message ${m}`)
    await pattern.waitFor(d => d === `pmessage,fo*,fo,${m}`, Math.max(1000, deadline - Date.now()), `pmessage ${m}`)
  }
  const gaps = (s: SseClient): string[] => s.data.filter(d => d.startsWith('gap,'))
  /** The messages after the `n`th gap event (0: the first), gap events left out. */
  const afterGap = (s: SseClient, n: number): string[] => {
    const at = s.data.map((d, i) => d.startsWith('gap,') ? i : -1).filter(i => i >= 0)[n] ?? s.data.length
    return s.data.slice(at + 1).filter(d => !d.startsWith('gap,'))
  }

  await roundTrip('before')
  const first = await subscriberConnections(topo)
  t.same(Object.values(first), [1], `one subscriber connection: ${JSON.stringify(first)}`)
  const masterPort = (await topo.master()).port
  const node = Number(Object.keys(first)[0])
  t.not(node, masterPort, 'on a replica')

  await t.test('the subscriber\'s replica is killed', async (t) => {
    const started = Date.now()
    await topo.kill(topo.redis.find(r => r.port === node)!)
    await plain.waitFor(d => d.startsWith('gap,'), 20_000, 'a gap event')
    await pattern.waitFor(d => d.startsWith('gap,'), 5000, 'a gap event')
    t.match(gaps(plain), [/^gap,(connection-lost|node-switch),\d{4}-\d\d-\d\dT[\d:.]+Z$/], `one gap event after ${Date.now() - started} ms: ${gaps(plain).join(' ')}`)
    for (const m of ['after-kill-1', 'after-kill-2', 'after-kill-3']) await roundTrip(m)
    t.same(afterGap(plain, 0), ['message,fo,after-kill-1', 'message,fo,after-kill-2', 'message,fo,after-kill-3'], 'every message published after the gap event arrived, in order')
    const now = await subscriberConnections(topo)
    t.same(Object.values(now), [1], `still one subscriber connection, now on :${Object.keys(now)[0]}`)
  })

  await t.test('SENTINEL FAILOVER', async (t) => {
    const before = gaps(plain).length
    const fo = await topo.failover()
    const switched = Date.now()
    await until(() => gaps(plain).length > before && gaps(pattern).length > before, 20_000, 'a gap event on both streams')
    t.comment(`SENTINEL FAILOVER :${fo.from} -> :${fo.to} in ${fo.ms} ms; gap events ${Date.now() - switched} ms after the sentinels agreed`)
    for (const m of ['after-failover-1', 'after-failover-2', 'after-failover-3']) await roundTrip(m)
    // The sentinels close the promoted node's clients, then the topology sees the new master: one or two episodes.
    t.ok(gaps(plain).slice(before).every(g => /^gap,(master-change|connection-lost|node-switch),/.test(g)), `gap events: ${gaps(plain).slice(before).join(' ')}`)
    t.same(afterGap(plain, before), ['message,fo,after-failover-1', 'message,fo,after-failover-2', 'message,fo,after-failover-3'], 'messages published after the first gap event arrived, in order')
    t.same(afterGap(pattern, before), ['pmessage,fo*,fo,after-failover-1', 'pmessage,fo*,fo,after-failover-2', 'pmessage,fo*,fo,after-failover-3'], 'on the pattern stream too')
    const now = await subscriberConnections(topo)
    t.same(Object.values(now), [1], `one subscriber connection, on :${Object.keys(now)[0]}`)
  })
})
