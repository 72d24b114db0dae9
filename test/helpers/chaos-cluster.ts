/**
 * Chaos scenarios against a real Redis Cluster (test/helpers/cluster.ts), rows of the same table as the
 * Sentinel ones (test/helpers/chaos.ts), for `npm run chaos`:
 *
 *   g. clusterFailover    CLUSTER FAILOVER on the replica of one shard under 20 writers
 *   h. clusterKillMaster  kill -9 of one shard's master under 20 writers
 *
 * Acknowledged writes are looked up on the master serving their slot afterwards (cluster.lost()).
 * Each scenario leaves the cluster healthy again (the killed node restarted as a replica).
 */
import calculateSlot from 'cluster-key-slot'
import { ok, Recorder, runWriters, sleep } from './chaos-load.js'
import { keyPrefix } from './chaos-failover.js'
import { check, failedChecks, guarded, newRow, type ChaosRow, type ScenarioOptions } from './chaos-row.js'
import { clusterGatewayEnv, type Cluster, type ClusterNodeView } from './cluster.js'
import { startInProcessWith } from './gateway.js'
import { waitUntil } from './topology-procs.js'

/** The gateway's defaults (src/config.ts), set explicitly so the longest-request limit matches them. */
const BUDGET_MS = 5000
const COMMAND_TIMEOUT_MS = 1000
const WAIT_TIMEOUT_MS = 500
/** A request may start its last attempt just before the budget ends: that attempt is bounded too. */
export const LONGEST_MS = BUDGET_MS + COMMAND_TIMEOUT_MS + WAIT_TIMEOUT_MS

export interface ClusterChaosOptions extends ScenarioOptions {
  /** When the fault happens, from the start of the load. */
  faultAtMs?: number
}

export const CLUSTER_FULL: Record<'g' | 'h', ClusterChaosOptions> = {
  g: { durationMs: 12_000, writers: 20, faultAtMs: 3000 },
  h: { durationMs: 12_000, writers: 20, faultAtMs: 3000 }
}

/**
 * Whether `slot` is in a CLUSTER NODES slot list ("0-5460", "5461", and "[slot->-id]" entries of a
 * migration in progress, which do not count: the node does not serve them yet).
 */
export function servesSlot (slots: readonly string[], slot: number): boolean {
  return slots.some(s => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(s)
    if (m === null) return false
    const from = Number(m[1])
    return slot >= from && slot <= Number(m[2] ?? m[1])
  })
}

type Fault = (cluster: Cluster, shard: { master: ClusterNodeView; replica: ClusterNodeView }) => Promise<void>

/**
 * The common body: 20 writers through a cluster-mode gateway, `fault` on the first shard at
 * `faultAtMs`, wait until that shard's replica serves its slots, then the row's numbers and checks.
 * `recovery` picks the row's recovery time from the shard's own writes.
 */
async function shardScenario (cluster: Cluster, row: ChaosRow, o: ClusterChaosOptions, fault: Fault,
  recovery: (shardWrites: Recorder, faultAt: number, loadEnd: number) => number | null): Promise<void> {
  const log = o.log ?? ((): void => {})
  await guarded(row, 'cluster run', async () => {
    const view = await cluster.view()
    const master = view.find(n => n.role === 'master' && n.slots.length > 0 && !n.failed)!
    const replica = view.find(n => n.masterId === master.id && !n.failed)
    if (replica === undefined) throw new Error(`shard of :${master.port} has no live replica`)
    const closers: Array<() => unknown> = []
    const gw = await startInProcessWith({ teardown: fn => { closers.push(fn) } }, clusterGatewayEnv(cluster, {
      LOG_LEVEL: process.env.CHAOS_GATEWAY_LOG_LEVEL ?? 'silent',
      REQUEST_RETRY_BUDGET_MS: String(BUDGET_MS), REDIS_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS), REDIS_WAIT_TIMEOUT_MS: String(WAIT_TIMEOUT_MS)
    }))
    const rec = new Recorder()
    const t0 = Date.now()
    let faultAt = 0
    let switchedMs = 0
    try {
      const load = runWriters(gw.url, rec, keyPrefix(row.scenario[0]!), o.writers ?? 20, { until: t0 + (o.durationMs ?? 12_000), pauseOnFailureMs: 20 })
      const act = (async () => {
        await sleep(o.faultAtMs ?? 3000)
        faultAt = Date.now()
        await fault(cluster, { master, replica })
        const slot = Number(/^\d+/.exec(master.slots[0]!)![0])
        await waitUntil(`:${replica.port} to serve the shard`, 20_000, async () => await cluster.masterOf(slot) === replica.port ? true : 'not yet')
        switchedMs = Date.now() - faultAt
      })()
      const [l, a] = await Promise.allSettled([load, act])
      if (l.status === 'rejected') throw l.reason
      if (a.status === 'rejected') throw a.reason
    } finally {
      for (const fn of closers.reverse()) await fn()
    }
    const loadEnd = rec.lastEnd(Date.now())
    const shardWrites = new Recorder()
    for (const op of rec.ops) if (servesSlot(master.slots, calculateSlot(op.key))) shardWrites.add(op)
    const lost = await cluster.lost(rec.acked)
    row.requests = rec.ops.length
    row.failures = rec.failed().length
    row.lostAcknowledgedWrites = lost.length
    row.longestRequestMs = rec.longest()
    row.recoveryMs = recovery(shardWrites, faultAt, loadEnd)
    log(`${row.scenario}: shard :${master.port} -> :${replica.port} in ${switchedMs} ms; ${rec.ops.length} PUTs, ${rec.acked.length} acknowledged`)
    row.notes.push(`shard :${master.port} -> :${replica.port} (slots ${master.slots.join(' ')}) ${switchedMs} ms after the fault; ` +
      `${shardWrites.ops.length} of the ${rec.ops.length} PUTs went to that shard; failures: ${rec.summarize(rec.failed())}`)
    const afterSwitch = shardWrites.ops.filter(x => ok(x) && x.start > faultAt + switchedMs).length
    check(row, 'the shard\'s new master acknowledged writes after the switch', afterSwitch > 0, `${afterSwitch} acknowledged PUTs to the shard started after it`)
    const odd = rec.failed().filter(x => !((x.status === 503 || x.status === 504) && x.errorShapeOk === true))
    check(row, 'every failed PUT is a clean 503/504 in the JSON error shape', odd.length === 0, `other failures: ${rec.summarize(odd)}${odd.length > 0 ? ` (${rec.describe(odd, faultAt)})` : ''}`)
    check(row, `longest request within budget + one attempt (${LONGEST_MS} ms)`, row.longestRequestMs <= LONGEST_MS, `${row.longestRequestMs} ms`)
    check(row, '0 acknowledged writes lost', lost.length === 0, `${lost.length} of ${rec.acked.length} not on the master serving their slot${lost.length > 0 ? `, e.g. ${lost.slice(0, 5).join(' ')}` : ''}`)
  })
}

/** Restarts dead nodes and waits until the cluster is healthy again; failures become a check. */
async function restoreCluster (cluster: Cluster, row: ChaosRow, log: (l: string) => void): Promise<void> {
  const started = Date.now()
  await guarded(row, 'restore', async () => {
    for (const p of cluster.nodes) if (!p.alive) { log(`restarting :${p.port}`); await cluster.restart(p) }
    await cluster.waitHealthy(60_000)
  })
  log(`${row.scenario}: cluster restored in ${Date.now() - started} ms`)
}

/** g. CLUSTER FAILOVER on the replica of one shard while 20 writers PUT new keys. */
export async function clusterFailover (cluster: Cluster, o: ClusterChaosOptions = {}): Promise<ChaosRow> {
  const row = newRow('g. cluster: CLUSTER FAILOVER of a shard')
  await shardScenario(cluster, row, o, async (c, { replica }) => {
    const r = c.client(replica.port)
    try { await r.call('CLUSTER', 'FAILOVER') } finally { r.disconnect() }
  }, (w, at, end) => w.longestAckGap(at, end))
  row.notes.push('recovery = longest gap between acknowledged writes to that shard after the failover was sent')
  await restoreCluster(cluster, row, o.log ?? (() => {}))
  return row
}

/** h. kill -9 of one shard's master while 20 writers PUT new keys; the cluster promotes its replica. */
export async function clusterKillMaster (cluster: Cluster, o: ClusterChaosOptions = {}): Promise<ChaosRow> {
  const row = newRow('h. cluster: kill -9 shard master')
  await shardScenario(cluster, row, o, async (c, { master }) => {
    await c.kill(c.nodes.find(n => n.port === master.port)!, 'SIGKILL')
  }, (w, at) => w.firstAckAfter(at))
  row.notes.push('recovery = kill -> first acknowledged write to that shard sent after it')
  await restoreCluster(cluster, row, o.log ?? (() => {}))
  return row
}

export const CLUSTER_SCENARIOS = [
  { id: 'g', run: clusterFailover },
  { id: 'h', run: clusterKillMaster }
] as const

/** Runs the given cluster scenarios one after the other against one cluster. */
export async function runCluster (cluster: Cluster, plan: Record<'g' | 'h', ClusterChaosOptions>, log: (l: string) => void, only?: string[]): Promise<ChaosRow[]> {
  const rows: ChaosRow[] = []
  for (const s of CLUSTER_SCENARIOS) {
    if (only !== undefined && !only.includes(s.id)) continue
    const started = Date.now()
    log(`--- scenario ${s.id} ---`)
    const row = await s.run(cluster, { ...plan[s.id], log })
    log(`scenario ${s.id} took ${Date.now() - started} ms, ${failedChecks(row).length} failed check(s)`)
    rows.push(row)
  }
  return rows
}
