/**
 * The @upstash/redis SDK through a planned failover (SENTINEL FAILOVER) of the real topology, with
 * an in-process gateway: every write acknowledged before (and during) the failover is present
 * after the topology converged, no non-idempotent write (INCR, RPUSH) is applied twice, and the
 * SDK's calls succeed again after the failover. Also: ?_token= never reaches a log line.
 */
import { Redis } from '@upstash/redis'
import t from 'tap'
import { startInProcess, startProcess, untilSettled } from './helpers/gateway.js'
import { pollUntil } from './helpers/kv-client.js'
import { topologyFor } from './helpers/topology.js'

const TOKEN = 'up-failover-t0ken'
const topo = await topologyFor(t)
const gw = await startInProcess(t, topo, { AUTH_TOKENS: `${TOKEN}:rw` })
const redis = new Redis({ url: gw.url, token: TOKEN, enableTelemetry: false, retry: false })
const P = `upfo:${process.pid}:${Date.now()}:`

await untilSettled(gw.app)

const before = Array.from({ length: 30 }, (_, i) => `${P}before-${i}`)

t.test('writes acknowledged before the failover', async t => {
  for (const key of before) t.equal(await redis.set(key, `v:${key}`), 'OK')
  for (let i = 0; i < 30; i++) await redis.incr(`${P}counter`)
  t.equal(await redis.rpush(`${P}list`, ...before), 30)
  t.same(await redis.multi().hset(`${P}hash`, { a: 1 }).incr(`${P}counter`).exec(), [1, 31])
})

/** Non-idempotent writes sent while the failover runs: what was acknowledged, what was attempted. */
const during = { incrAcked: 0, incrSent: 0, pushedAcked: [] as string[], pushedSent: [] as string[], errors: [] as string[] }

t.test('through a planned failover the SDK keeps working and nothing is applied twice', async t => {
  let stop = false
  const writer = (async () => {
    for (let i = 0; !stop; i++) {
      during.incrSent++
      try {
        await redis.incr(`${P}during-counter`)
        during.incrAcked++
      } catch (err) {
        during.errors.push((err as Error).message.split(',')[0]!)
      }
      const item = `item-${i}`
      during.pushedSent.push(item)
      try {
        await redis.rpush(`${P}during-list`, item)
        during.pushedAcked.push(item)
      } catch (err) {
        during.errors.push((err as Error).message.split(',')[0]!)
      }
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  })()
  const fo = await topo.failover()
  t.comment(`SENTINEL FAILOVER :${fo.from} -> :${fo.to} in ${fo.ms} ms`)

  // The SDK's calls succeed again shortly after the failover (the gateway follows the new master).
  const { value, ms } = await pollUntil(15_000, 100, async () => {
    await redis.set(`${P}after`, 'yes')
    return await redis.get(`${P}after`)
  })
  t.equal(value, 'yes', `writes and reads succeed again ${ms} ms after the sentinels agreed`)
  await new Promise(resolve => setTimeout(resolve, 500))
  stop = true
  await writer
  t.comment(`during the failover: ${during.incrAcked}/${during.incrSent} INCR and ${during.pushedAcked.length}/${during.pushedSent.length} RPUSH acknowledged; errors: ${[...new Set(during.errors)].join(' | ') || 'none'}`)
  t.ok(during.incrAcked > 0, 'writes were acknowledged while the failover ran')
  for (const e of during.errors) t.match(e, /GW_ERR_WRITE_OUTCOME_UNKNOWN|GW_ERR_REDIS_UNAVAILABLE|GW_ERR_BREAKER_OPEN/, 'a write that failed said whether it may have applied')

  t.equal(gw.app.topology.snapshot.master?.port, fo.to, 'the gateway writes to the new master')
  for (let i = 0; i < 10; i++) {
    t.equal(await redis.incr(`${P}after-counter`), i + 1, `INCR ${i + 1} after the failover`)
  }
  t.same(await redis.pipeline().set(`${P}after-p`, 'p').get(`${P}after-p`).exec(), ['OK', 'p'], 'a pipeline after the failover')
  t.same(await redis.multi().incr(`${P}after-m`).incr(`${P}after-m`).exec(), [1, 2], 'a transaction after the failover')
})

t.test('after convergence: every acknowledged write is there, none applied twice', async t => {
  await topo.waitConverged()
  const master = await topo.masterProc()
  const c = topo.client(master.port)
  t.teardown(async () => { await c.quit() })
  for (const key of before) t.equal(await c.get(key), `v:${key}`, `${key} on the new master`)
  t.equal(await c.get(`${P}counter`), '31', 'the counter holds every acknowledged INCR, once')
  t.same(await c.lrange(`${P}list`, 0, -1), before, 'the list holds every acknowledged RPUSH, once')
  t.same(await c.hgetall(`${P}hash`), { a: '1' })

  const counted = Number(await c.get(`${P}during-counter`))
  t.ok(counted >= during.incrAcked, `INCR during the failover: ${counted} applied >= ${during.incrAcked} acknowledged`)
  t.ok(counted <= during.incrSent, `and <= ${during.incrSent} sent: no INCR applied twice`)
  const list = await c.lrange(`${P}during-list`, 0, -1)
  t.equal(new Set(list).size, list.length, 'no RPUSH applied twice')
  const missing = during.pushedAcked.filter(item => !list.includes(item))
  t.same(missing, [], 'every acknowledged RPUSH is in the list')
  t.same(list, during.pushedSent.filter(item => list.includes(item)), 'in the order they were sent')

  // And the SDK reads them, from the replicas of the new master.
  for (const key of before.slice(0, 5)) t.equal(await redis.get(key), `v:${key}`)
  t.equal(await redis.get(`${P}counter`), 31)
})

t.test('a ?_token= never reaches the log lines (gateway process at LOG_LEVEL=info)', async t => {
  const proc = await startProcess(t, topo, { AUTH_TOKENS: `${TOKEN}:rw`, LOG_LEVEL: 'info' })
  const r = await fetch(`${proc.url}/set/${encodeURIComponent(`${P}logged`)}/v?_token=${TOKEN}`)
  t.equal(r.status, 200)
  t.same(await r.json(), { result: 'OK' })
  const bad = await fetch(`${proc.url}/get/k?_token=${TOKEN}x`)
  t.equal(bad.status, 401)
  await bad.text()
  await proc.stop()
  const out = proc.output()
  t.match(out, /_token=\[redacted\]/, 'the request line shows the URL with the token redacted')
  t.notOk(out.includes(TOKEN), 'the token appears nowhere in the output')
})
