/**
 * Cluster mode under failovers, with 20 bounded writers: `CLUSTER FAILOVER` on the replica of one
 * shard, then kill -9 of another shard's master. Every acknowledged write must be on the master now
 * serving its slot (checked on the servers afterwards), every failure a clean 503/504, no request
 * longer than the retry budget plus one attempt, and the gateway writing to both new masters.
 */
import calculateSlot from 'cluster-key-slot'
import t from 'tap'
import { clusterFor, startClusterGateway } from './helpers/cluster.js'
import { ms, ok, Recorder, runWriters, sleep } from './helpers/chaos-load.js'
import { waitUntil } from './helpers/topology-procs.js'

const BUDGET_MS = 5000
const COMMAND_TIMEOUT_MS = 1000
const WAIT_TIMEOUT_MS = 500
/** A request may start its last attempt just before the budget ends: that attempt is bounded too. */
const LONGEST_MS = BUDGET_MS + COMMAND_TIMEOUT_MS + WAIT_TIMEOUT_MS
const WRITERS = 20

const cluster = await clusterFor(t, { nodeTimeoutMs: 1000 })
const gw = await startClusterGateway(t, cluster, {
  REQUEST_RETRY_BUDGET_MS: String(BUDGET_MS), REDIS_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS), REDIS_WAIT_TIMEOUT_MS: String(WAIT_TIMEOUT_MS)
})
const P = `clfo:${process.pid}`

t.test('CLUSTER FAILOVER and kill -9 of a shard master under 20 writers: no acknowledged write lost', async t => {
  const view = await cluster.view()
  const masters = view.filter(n => n.role === 'master' && n.slots.length > 0)
  const [a, b] = masters
  const aReplica = view.find(n => n.masterId === a!.id)!
  const bReplica = view.find(n => n.masterId === b!.id)!
  const aSlot = Number(a!.slots[0]!.split('-')[0])
  const bSlot = Number(b!.slots[0]!.split('-')[0])

  const rec = new Recorder()
  const t0 = Date.now()
  let stop = false
  const load = runWriters(gw.url, rec, P, WRITERS, { until: t0 + 25_000, stop: () => stop, pauseOnFailureMs: 20 })
  const marks: Record<string, number> = {}
  try {
    await sleep(1000)
    // A planned failover: the replica takes over shard A, its old master becomes its replica.
    marks.failoverSent = Date.now()
    const r = cluster.client(aReplica.port)
    try { await r.call('CLUSTER', 'FAILOVER') } finally { r.disconnect() }
    await waitUntil(`:${aReplica.port} to serve shard A`, 10_000, async () => await cluster.masterOf(aSlot) === aReplica.port ? true : 'not yet')
    marks.failoverDone = Date.now()
    await sleep(1000)
    // A crash: shard B's master dies; the cluster promotes its replica after cluster-node-timeout.
    marks.killed = Date.now()
    await cluster.kill(cluster.nodes.find(n => n.port === b!.port)!)
    await waitUntil(`:${bReplica.port} to serve shard B`, 15_000, async () => await cluster.masterOf(bSlot) === bReplica.port ? true : 'not yet')
    marks.promoted = Date.now()
    await sleep(2000)
  } finally {
    stop = true
    await load
  }
  const end = rec.lastEnd(Date.now())
  t.comment(`timeline (ms from start): ${Object.entries(marks).map(([k, v]) => `${k} +${v - t0}`).join(', ')}, load ended +${end - t0}`)

  const puts = rec.of('put')
  const failed = rec.failed('put')
  t.comment(`${puts.length} PUTs, ${rec.acked.length} acknowledged, failures: ${rec.summarize(failed)}; longest ${rec.longest('put')} ms`)
  t.ok(rec.acked.length > 200, `writes went on (${rec.acked.length} acknowledged)`)
  t.same(failed.filter(o => !((o.status === 503 || o.status === 504) && o.errorShapeOk === true)).map(o => `${o.status} ${o.code ?? o.error ?? ''}`), [],
    'every failure is a clean 503 (nothing applied) or 504 (outcome unknown) in the gateway\'s error shape')
  t.ok(rec.longest('put') <= LONGEST_MS, `longest request ${rec.longest('put')} ms <= budget + one attempt (${LONGEST_MS} ms)`)

  const lost = await cluster.lost(rec.acked)
  t.same(lost, [], `all ${rec.acked.length} acknowledged keys are on the master serving their slot now`)

  t.ok(rec.ops.some(o => o.kind === 'put' && ok(o) && o.start > marks.promoted!), 'writes are acknowledged again after both failovers')
  // The writes sent after each switch that hash to the switched shard were taken by its new master.
  for (const [name, port, since] of [['A', aReplica.port, marks.failoverDone!], ['B', bReplica.port, marks.promoted!]] as const) {
    const keys = rec.ops.filter(o => o.kind === 'put' && ok(o) && o.start > since).map(o => o.key)
    const mine: string[] = []
    for (const k of keys) if (await cluster.masterOf(calculateSlot(k)) === port) mine.push(k)
    t.ok(mine.length > 0, `shard ${name}: ${mine.length} writes acknowledged by its new master :${port} after the switch`)
  }
  const shards = gw.app.cluster!.shards.map(s => s.snapshot)
  const moved = shards.filter(s => s.lastFailover !== null).map(s => `${s.lastFailover!.from?.port}->${s.lastFailover!.to.port}`).sort()
  t.same(moved, [`${a!.port}->${aReplica.port}`, `${b!.port}->${bReplica.port}`].sort(), 'each shard records its failover (from -> to)')
  const metrics = await (await fetch(`${gw.url}/metrics`)).text()
  const counted = metrics.split('\n').filter(l => l.startsWith('skv_shard_failovers_total{')).map(l => l.split(' ').pop())
  t.same(counted, ['1', '1'], `skv_shard_failovers_total counts one failover on each of the two shards (${counted.join(',')})`)
  t.comment(`slowest PUTs: ${rec.ops.filter(o => o.kind === 'put').sort((x, y) => ms(y) - ms(x)).slice(0, 3).map(o => `${ms(o)} ms ${o.status} +${o.start - t0}`).join(', ')}`)
})
