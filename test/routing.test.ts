/**
 * Where reads land, checked on the Redis servers themselves (INFO commandstats), and what
 * happens to reads when replicas die: one real topology, in-process gateways.
 */
import t from 'tap'
import { gatewayEnv, startInProcess } from './helpers/gateway.js'
import { commandCalls, KvClient, pollUntil } from './helpers/kv-client.js'
import { topologyFor, type NodeProc } from './helpers/topology.js'

const N = 40
const topo = await topologyFor(t)
const KEY = `routing:${process.pid}:${Date.now()}`

/** cmdstat_get calls on every live redis node, by port. */
async function getCalls (): Promise<Map<number, number>> {
  const out = new Map<number, number>()
  for (const p of topo.redis.filter(r => r.alive)) {
    const c = topo.client(p.port)
    try {
      out.set(p.port, await commandCalls(c, 'get'))
    } finally {
      await c.quit()
    }
  }
  return out
}

const delta = (before: Map<number, number>, after: Map<number, number>, port: number): number =>
  (after.get(port) ?? 0) - (before.get(port) ?? 0)

async function roles (): Promise<{ master: NodeProc; replicas: NodeProc[] }> {
  const master = await topo.masterProc()
  return { master, replicas: topo.redis.filter(r => r !== master) }
}

/** Reads until `n` in a row are served by a replica (connections warm), bounded. */
async function warmUp (api: KvClient, n = 4): Promise<boolean> {
  const { value } = await pollUntil(5000, 20, async () => {
    for (let i = 0; i < n; i++) {
      const r = await api.get(KEY)
      if (r.status !== 200 || r.headers.get('x-served-by') !== 'replica') return undefined
    }
    return true
  })
  return value === true
}

/** N GETs; returns the X-Served-By counts and every status seen. */
async function readMany (api: KvClient, n: number, query = ''): Promise<{ servedBy: Record<string, number>; statuses: number[] }> {
  const servedBy: Record<string, number> = {}
  const statuses: number[] = []
  for (let i = 0; i < n; i++) {
    const r = await api.get(KEY, query)
    statuses.push(r.status)
    const who = r.headers.get('x-served-by') ?? 'none'
    servedBy[who] = (servedBy[who] ?? 0) + 1
  }
  return { servedBy, statuses }
}

// Routing is what a read that reaches Redis does: the near-cache (test/near-cache.test.ts) is off
// here, so every GET is counted on the servers.
const NO_CACHE = { NEAR_CACHE: 'false' }
const gw = await startInProcess(t, topo, NO_CACHE)
const api = new KvClient(gw.url)

t.test('the key to read is written once and reaches both replicas', async t => {
  const put = await api.put(KEY, 'routed value')
  t.equal(put.status, 201)
  t.equal((put.json as { replicas: number }).replicas, 2)
  t.ok(await warmUp(api), 'reads reach the replicas once the connections are up')
})

t.test('default GETs land on the replicas, split evenly by round-robin, and never on the master', async t => {
  const { master, replicas } = await roles()
  const before = await getCalls()
  const { servedBy, statuses } = await readMany(api, N)
  const after = await getCalls()
  t.ok(statuses.every(s => s === 200), `all ${N} GETs answered 200`)
  t.same(servedBy, { replica: N }, 'every answer says X-Served-By: replica')
  t.equal(delta(before, after, master.port), 0, 'the master ran no GET')
  const [a, b] = replicas.map(r => delta(before, after, r.port)) as [number, number]
  t.comment(`round-robin: replica :${replicas[0]!.port} ran ${a} GETs, :${replicas[1]!.port} ran ${b}`)
  t.equal(a + b, N, `the replicas ran exactly the ${N} GETs between them`)
  t.ok(a >= N * 0.3 && b >= N * 0.3, `both replicas served a fair share (${a}/${b}, each at least ${N * 0.3})`)
})

t.test('GETs with consistency=strong land only on the master', async t => {
  const { master, replicas } = await roles()
  const before = await getCalls()
  const { servedBy, statuses } = await readMany(api, N, 'consistency=strong')
  const after = await getCalls()
  t.ok(statuses.every(s => s === 200), `all ${N} strong GETs answered 200`)
  t.same(servedBy, { master: N }, 'every answer says X-Served-By: master')
  t.equal(delta(before, after, master.port), N, `the master ran exactly ${N} GETs`)
  for (const r of replicas) t.equal(delta(before, after, r.port), 0, `replica :${r.port} ran no GET`)
})

for (const strategy of ['random', 'least-latency'] as const) {
  t.test(`with REDIS_READ_STRATEGY=${strategy} default GETs are served by the replicas`, async t => {
    const g = await startInProcess(t, topo, { ...NO_CACHE, REDIS_READ_STRATEGY: strategy })
    const client = new KvClient(g.url)
    t.equal((await client.topology()).readStrategy, strategy, '/topology reports the strategy')
    t.ok(await warmUp(client), 'reads reach the replicas once the connections are up')
    const { master, replicas } = await roles()
    const before = await getCalls()
    const { servedBy, statuses } = await readMany(client, N)
    const after = await getCalls()
    t.ok(statuses.every(s => s === 200), `all ${N} GETs answered 200`)
    t.same(servedBy, { replica: N }, 'every answer says X-Served-By: replica')
    t.equal(delta(before, after, master.port), 0, 'the master ran no GET')
    const counts = replicas.map(r => delta(before, after, r.port))
    t.comment(`${strategy}: replicas ran ${counts.join(' / ')} GETs`)
    t.equal(counts.reduce((x, y) => x + y, 0), N, `the replicas ran exactly the ${N} GETs between them`)
    if (strategy === 'random') t.ok(counts.every(c => c > 0), 'random spreads reads over both replicas')
  })
}

t.test('reads survive replicas dying and come back to them after a restart', async t => {
  const { replicas } = await roles()
  const [first, second] = replicas as [NodeProc, NodeProc]

  await t.test('reads keep answering 200 right after one replica is killed -9', async t => {
    await topo.kill(first)
    const killedAt = Date.now()
    const { servedBy, statuses } = await readMany(api, 30)
    t.same(statuses.filter(s => s !== 200), [], 'all 30 GETs right after the kill answered 200')
    t.comment(`served by ${JSON.stringify(servedBy)} in ${Date.now() - killedAt} ms after the kill`)

    const { value, ms } = await pollUntil(3500, 100, async () => {
      const r = (await api.topology()).replicas.find(x => x.port === first.port)
      return r !== undefined && !r.healthy ? r : undefined
    })
    const sinceKill = Date.now() - killedAt
    t.comment(`/topology showed :${first.port} unhealthy (${value?.reason ?? '?'}) ${sinceKill} ms after the kill`)
    t.ok(value !== undefined, `/topology lists :${first.port} as unhealthy`)
    t.ok(sinceKill <= 3500 && ms <= 3500, `within ~3 s of the kill (${sinceKill} ms)`)
    const view = await api.topology()
    t.ok(view.replicas.find(x => x.port === second.port)?.healthy, `the other replica :${second.port} stays healthy`)

    const after = await readMany(api, 10)
    t.same(after.servedBy, { replica: 10 }, 'reads are served by the remaining replica')
  })

  await t.test('reads fall back to the master when every replica is down', async t => {
    await topo.kill(second)
    const { servedBy, statuses } = await readMany(api, 20)
    t.same(statuses.filter(s => s !== 200), [], 'all 20 GETs right after the second kill answered 200')
    t.same(servedBy, { master: 20 }, 'every answer says X-Served-By: master')
    const r = await api.get(KEY)
    t.equal(r.text, 'routed value', 'the master answers the right bytes')
  })

  await t.test('restarted replicas converge and serve reads again', async t => {
    await Promise.all([topo.restart(first), topo.restart(second)])
    await topo.waitConverged()
    const { value, ms } = await pollUntil(15_000, 200, async () => {
      const v = await api.topology()
      return v.replicas.filter(r => r.healthy).length === 2 ? v : undefined
    })
    t.ok(value !== undefined, `/topology shows both replicas healthy again (${ms} ms after convergence)`)
    t.ok(await warmUp(api, 6), 'default GETs are served by replicas again')
  })
})
