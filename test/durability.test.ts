// Replica-confirmed writes, durability opt-out, read-your-writes tokens, and the create-only retry
// recognition of the PUT script, against a real topology.
import t from 'tap'
import { PUT_SCRIPT } from '../src/redis/scripts.js'
import { startInProcess } from './helpers/gateway.js'
import { commandCalls } from './helpers/kv-client.js'
import { topologyFor } from './helpers/topology.js'

const topo = await topologyFor(t)
const gw = await startInProcess(t, topo)
const put = async (key: string, body: string, query = '', headers: Record<string, string> = {}): Promise<Response> =>
  await fetch(`${gw.url}/kv/${encodeURIComponent(key)}${query}`, { method: 'PUT', body, headers })

t.test('a replicated write is confirmed by both replicas before it is acknowledged', async t => {
  const r = await put('dur:1', 'v')
  t.equal(r.status, 201)
  const body = await r.json() as { replicas: number; syncToken: string }
  t.equal(body.replicas, 2)
  t.match(r.headers.get('x-sync-token'), /^\d+$/)
  t.equal(body.syncToken, r.headers.get('x-sync-token'))
  const topology = await (await fetch(`${gw.url}/topology`)).json() as { requiredReplicas: number }
  t.equal(topology.requiredReplicas, 2)
})

t.test('durability=none is acknowledged by the master alone', async t => {
  const r = await put('dur:2', 'v', '?durability=none')
  t.equal(r.status, 201)
  t.equal((await r.json() as { replicas: number }).replicas, 0)
  const bad = await put('dur:2', 'v', '?durability=maybe')
  t.equal(bad.status, 400)
})

t.test('a GET with a sync token is served by a replica that has the write, or by the master', async t => {
  const r = await put('ryw:1', 'fresh')
  const token = r.headers.get('x-sync-token')!
  const g = await fetch(`${gw.url}/kv/ryw%3A1`, { headers: { 'x-sync-token': token } })
  t.equal(g.status, 200)
  t.equal(await g.text(), 'fresh')
  t.equal(g.headers.get('x-served-by'), 'replica', 'WAIT already brought the replicas to the token')
  // A token no replica has reached yet: only the master may answer.
  const future = String(Number(token) + 1_000_000_000)
  const m = await fetch(`${gw.url}/kv/ryw%3A1?syncToken=${future}`)
  t.equal(m.status, 200)
  t.equal(m.headers.get('x-served-by'), 'master')
  const bad = await fetch(`${gw.url}/kv/ryw%3A1`, { headers: { 'x-sync-token': 'abc' } })
  t.equal(bad.status, 400)
})

t.test('a create-only PUT retried after its first attempt applied recognises its own write', async t => {
  const m = await topo.master()
  const c = topo.client(m.port)
  t.teardown(() => c.disconnect())
  await c.del('nx:own')
  const run = async (value: string, retry: string): Promise<number> =>
    Number(await c.eval(PUT_SCRIPT, 1, 'nx:own', value, 'NX', '0', retry))
  t.equal(await run('mine', '0'), 0, 'first attempt creates')
  t.equal(await run('mine', '0'), -1, 'a fresh create-only write is refused')
  t.equal(await run('mine', '1'), 0, 'a retry finding its own bytes answers created')
  t.equal(await run('theirs', '1'), -1, 'a retry finding other bytes is refused')
  t.equal(await c.get('nx:own'), 'mine')
})

t.test('after SCRIPT FLUSH on the master a PUT is still on both replicas when acknowledged (a NOSCRIPT is never resent after WAIT)', async t => {
  const m = await topo.masterProc()
  const master = topo.client(m.port)
  const replicas = topo.redis.filter(p => p.alive && p.port !== m.port).map(p => topo.client(p.port))
  t.teardown(async () => { for (const c of [master, ...replicas]) await c.quit().catch(() => {}) })
  // Every write connection of the pool (REDIS_POOL_SIZE=2) sends the text once, then the SHA.
  for (let i = 0; i < 4; i++) t.ok([200, 201].includes((await put('dur:flush', 'before')).status))
  const evalsha0 = await commandCalls(master, 'evalsha')
  t.equal((await put('dur:flush', 'loaded')).status, 200)
  t.ok(await commandCalls(master, 'evalsha') > evalsha0, 'once the server has the script, a PUT sends its SHA (EVALSHA)')
  const noScripts0 = await failedCalls(master, 'evalsha')
  for (let i = 0; i < 20; i++) {
    await master.call('SCRIPT', 'FLUSH')
    // Concurrent PUTs share a WAIT (group commit): each must still be on both replicas when acknowledged.
    const rs = await Promise.all([0, 1, 2].map(async j => await put(`dur:flush:${j}`, `after-${i}`)))
    for (const [j, r] of rs.entries()) {
      t.ok([200, 201].includes(r.status), `PUT ${i}/${j} after SCRIPT FLUSH`)
      t.equal((await r.json() as { replicas: number }).replicas, 2)
      for (const c of replicas) t.equal(await c.get(`dur:flush:${j}`), `after-${i}`, 'the replica has it once acknowledged')
    }
  }
  t.ok(await failedCalls(master, 'evalsha') > noScripts0, 'the flushes made EVALSHA answer NOSCRIPT (the case under test happened)')
})

/** Calls of `cmd` that answered an error (NOSCRIPT for EVALSHA), from INFO commandstats. */
async function failedCalls (c: ReturnType<typeof topo.client>, cmd: string): Promise<number> {
  const m = new RegExp(`^cmdstat_${cmd}:.*failed_calls=(\\d+)`, 'm').exec(await c.info('commandstats'))
  return m === null ? 0 : Number(m[1])
}

t.test('writes wait for a killed replica until the sentinels agree it is down, then succeed', async t => {
  const m = await topo.master()
  const victim = topo.redis.find(p => p.port !== m.port)!
  await topo.kill(victim)
  const started = Date.now()
  const r = await put('dur:after-kill', 'v')
  const ms = Date.now() - started
  t.comment(`PUT after killing a replica answered ${r.status} in ${ms} ms`)
  t.equal(r.status, 201)
  t.equal((await r.json() as { replicas: number }).replicas, 1)
  await topo.restart(victim)
  await topo.waitConverged()
  // Once the replica is back and attached again, it is required again.
  const deadline = Date.now() + 10_000
  let replicas = 0
  while (Date.now() < deadline && replicas !== 2) {
    replicas = (await (await put('dur:after-restart', 'v')).json() as { replicas: number }).replicas
    if (replicas !== 2) await new Promise(resolve => setTimeout(resolve, 200))
  }
  t.equal(replicas, 2)
})

t.test('durability=all waits for every node the sentinels list: 503 with nothing applied while one is down, then both have it', async t => {
  const m = await topo.master()
  const victim = topo.redis.find(p => p.port !== m.port)!
  await topo.kill(victim)
  // Wait until the sentinels flag it down: a replicated write no longer counts it.
  const deadline = Date.now() + 10_000
  let topology = { requiredReplicas: -1, allReplicas: -1 }
  while (Date.now() < deadline && topology.requiredReplicas !== 1) {
    topology = await (await fetch(`${gw.url}/topology`)).json() as typeof topology
    if (topology.requiredReplicas !== 1) await new Promise(resolve => setTimeout(resolve, 200))
  }
  t.same(topology, { ...topology, requiredReplicas: 1, allReplicas: 2 }, 'a replica flagged down leaves the replicated count, not the strict one')
  const strict = await put('dur:all-down', 'v', '?durability=all')
  t.equal(strict.status, 503, 'a strict write waits, then answers 503')
  t.match(await strict.json(), { error: { code: 'GW_ERR_REDIS_UNAVAILABLE', message: /2 more replica|1 more replica/ } })
  const mc = topo.client(m.port)
  try {
    t.equal(await mc.exists('dur:all-down'), 0, 'nothing was applied on the master')
  } finally {
    await mc.quit()
  }
  const replicated = await put('dur:all-replicated', 'v')
  t.equal(replicated.status, 201, 'a replicated write still succeeds with the other replica')
  await topo.restart(victim)
  await topo.waitConverged()
  const back = Date.now() + 10_000
  let r = await put('dur:all-back', 'v', '?durability=all')
  while (r.status !== 201 && Date.now() < back) r = await put('dur:all-back', 'v', '?durability=all')
  t.equal(r.status, 201, 'once it is back and attached, a strict write succeeds')
  t.equal((await r.json() as { replicas: number }).replicas, 2, 'confirmed by both replicas')
})
