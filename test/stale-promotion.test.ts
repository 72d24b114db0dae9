/**
 * Stale promotion (issue 11, requirement 3), on loopback with real servers and the compiled gateway:
 * the sentinels promote a replica that lacks writes the gateway acknowledged, and the gateway says
 * so (/topology lastFailover.acknowledgedWritesAtRisk, skv_stale_promotions_total, an error line);
 * a planned SENTINEL FAILOVER loses nothing and says so too.
 *
 * The recipe: replica X frozen (SIGSTOP) until the sentinels flag it down, so the pinned WAIT count
 * legitimately leaves it out; its replication connection killed on the master, so nothing written
 * afterwards even sits in X's socket buffer; writes acknowledged by the other replica Y only; then
 * Y and the master killed and X resumed: X is the only node the sentinels can promote.
 */
import t, { type Test } from 'tap'
import { startProcess, type GatewayProcess } from './helpers/gateway.js'
import { KvClient, pollUntil } from './helpers/kv-client.js'
import { kv } from './helpers/topology-procs.js'
import { topologyFor, type NodeProc, type Topology } from './helpers/topology.js'

interface Check {
  acknowledgedWritesAtRisk: boolean | null
  acknowledgedOffsetGap: number | null
  acknowledged: { node: string; replid: string; offset: number } | null
  newMasterHistory: { replid: string; replid2: string; secondReplOffset: number; masterReplOffset: number } | null
}
interface View {
  master: { port: number; confirmed: boolean } | null
  requiredReplicas: number
  lastFailover: ({ to: { port: number }; detectedBy: string } & Check) | null
  lastAcknowledged: { node: string; replid: string; offset: number } | null
}

const P = `stale:${process.pid}:`

async function view (api: KvClient): Promise<View> { return await api.topology() as unknown as View }

async function infoOf (topo: Topology, port: number): Promise<Record<string, string>> {
  const c = topo.client(port)
  try {
    const text = await c.info('replication')
    return Object.fromEntries(text.split(/\r?\n/).filter(l => l.includes(':')).map(l => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]))
  } finally { await c.quit() }
}

async function staleCount (gw: GatewayProcess): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text()
  const m = /^skv_stale_promotions_total (\d+)/m.exec(text)
  if (m === null) throw new Error('skv_stale_promotions_total missing from /metrics')
  return Number(m[1])
}

/** True when every live sentinel flags replica `port` s_down (or o_down). */
async function flaggedDown (topo: Topology, port: number): Promise<boolean> {
  for (const s of topo.sentinels.filter(s => s.alive)) {
    const c = topo.client(s.port)
    try {
      const list = await c.call('SENTINEL', 'REPLICAS', topo.masterName) as unknown[]
      const r = list.map(kv).find(r => Number(r.port) === port)
      if (r === undefined || !/s_down|o_down/.test(r.flags ?? '')) return false
    } finally { c.disconnect() }
  }
  return true
}

async function putAll (t: Test, api: KvClient, keys: string[], replicas: number): Promise<string> {
  let token = ''
  for (const k of keys) {
    const r = await api.put(k, `value of ${k}`)
    t.equal(r.status, 201, `PUT ${k}`)
    t.equal((r.json as { replicas: number }).replicas, replicas, `${k} confirmed by ${replicas} replica(s)`)
    token = r.headers.get('x-sync-token') ?? ''
  }
  return token
}

t.test('a planned SENTINEL FAILOVER: the new master holds every acknowledged write, nothing at risk', async t => {
  const topo = await topologyFor(t)
  const gw = await startProcess(t, topo)
  const api = new KvClient(gw.url)
  await pollUntil(3000, 50, async () => (await view(api)).master?.confirmed === true ? true : undefined)
  const token = await putAll(t, api, Array.from({ length: 10 }, (_, i) => `${P}planned-${i}`), 2)
  const before = await view(api)
  t.equal(String(before.lastAcknowledged?.offset), token, '/topology shows the last acknowledged offset (the last PUT\'s X-Sync-Token)')
  t.equal(before.lastAcknowledged?.replid, (await infoOf(topo, before.master!.port)).master_replid, '... with the master\'s replication id')

  const fo = await topo.failover()
  const { value } = await pollUntil(10_000, 50, async () => {
    const v = await view(api)
    return v.master?.port === fo.to && v.lastFailover?.acknowledgedWritesAtRisk !== null && v.lastFailover !== null ? v : undefined
  })
  t.ok(value !== undefined, 'the gateway checked the new master\'s history')
  const f = value!.lastFailover!
  t.equal(f.acknowledgedWritesAtRisk, false, 'acknowledgedWritesAtRisk: false')
  t.equal(f.acknowledgedOffsetGap, 0)
  t.equal(String(f.acknowledged?.offset), token, 'the position compared is the last acknowledged write')
  t.equal(f.newMasterHistory?.replid2, before.lastAcknowledged?.replid, 'the new master\'s previous id is the old master\'s id')
  t.ok(f.newMasterHistory!.secondReplOffset - 1 >= Number(token), 'and reaches past the acknowledged offset')
  t.equal(await staleCount(gw), 0, 'skv_stale_promotions_total stays 0')
  t.notMatch(gw.output(), /stale promotion/, 'no stale-promotion error logged')
})

t.test('the sentinels promote a replica that lacks acknowledged writes: the gateway reports the stale promotion', async t => {
  const topo = await topologyFor(t)
  const gw = await startProcess(t, topo)
  const api = new KvClient(gw.url)
  await pollUntil(3000, 50, async () => (await view(api)).master?.confirmed === true ? true : undefined)
  const before = Array.from({ length: 5 }, (_, i) => `${P}before-${i}`)
  await putAll(t, api, before, 2)

  const master = await topo.masterProc()
  const [x, y] = topo.redis.filter(p => p.port !== master.port) as [NodeProc, NodeProc]
  await topo.kill(x, 'SIGSTOP')
  const m = topo.client(master.port)
  await m.call('CLIENT', 'KILL', 'TYPE', 'replica') // Y reconnects at once; X is frozen and cannot
  await m.quit()
  const { value: down } = await pollUntil(15_000, 100, async () => await flaggedDown(topo, x.port) ? true : undefined)
  t.ok(down, `the sentinels flag the frozen replica :${x.port} down`)
  const { value: pinned } = await pollUntil(5000, 50, async () => {
    const v = await view(api)
    return v.requiredReplicas === 1 ? v : undefined
  })
  t.ok(pinned !== undefined, 'the gateway\'s WAIT count leaves the flagged replica out (1)')

  const lost = Array.from({ length: 20 }, (_, i) => `${P}lost-${i}`)
  const token = await putAll(t, api, lost, 1)
  const acked = (await view(api)).lastAcknowledged
  t.equal(String(acked?.offset), token, 'lastAcknowledged is the last PUT\'s offset')

  await topo.kill(y, 'SIGKILL')
  await topo.kill(master, 'SIGKILL')
  await topo.kill(x, 'SIGCONT')
  const { value } = await pollUntil(40_000, 100, async () => {
    const v = await view(api)
    return v.master?.port === x.port && v.lastFailover !== null && v.lastFailover.acknowledgedWritesAtRisk !== null ? v : undefined
  })
  t.ok(value !== undefined, `the sentinels promoted :${x.port} and the gateway checked its history`)
  const f = value!.lastFailover!
  const xInfo = await infoOf(topo, x.port)
  t.equal(xInfo.role, 'master')
  t.equal(f.acknowledgedWritesAtRisk, true, 'acknowledgedWritesAtRisk: true')
  t.same(f.acknowledged, acked, 'the position compared is the last acknowledged write')
  t.equal(f.newMasterHistory?.replid2, acked?.replid, 'X was promoted from the old master\'s history...')
  const expectedGap = Number(token) - (Number(xInfo.second_repl_offset) - 1)
  t.comment(`acknowledged up to ${token} on ${acked?.replid ?? '?'}; :${x.port} promoted holding it up to ${Number(xInfo.second_repl_offset) - 1}; gateway reports gap ${String(f.acknowledgedOffsetGap)}`)
  t.equal(f.acknowledgedOffsetGap, expectedGap, `... which it holds only up to byte ${Number(xInfo.second_repl_offset) - 1}: gap ${expectedGap} bytes`)
  t.ok(expectedGap > lost.length * 20, 'the gap covers at least the lost writes\' bytes')
  t.equal(await staleCount(gw), 1, 'skv_stale_promotions_total counts 1')
  const errorLines = gw.output().split('\n').filter(l => l.includes('stale promotion'))
  t.equal(errorLines.length, 1, 'one stale-promotion line logged')
  t.match(errorLines[0] ?? '', /"level":50/, 'at level error')

  // The loss is real: X lacks the writes acknowledged while it was frozen, not the ones before.
  const c = topo.client(x.port)
  try {
    t.equal(await c.exists(...lost), 0, 'none of the writes acknowledged while X was down are on the new master')
    t.equal(await c.exists(...before), before.length, 'the writes acknowledged by both replicas are')
  } finally { await c.quit() }
  const again = await api.put(`${P}after`, 'x')
  t.equal(again.status, 201, 'writes are taken again on the new master')
})
