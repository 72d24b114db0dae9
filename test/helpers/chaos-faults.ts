/**
 * Chaos scenarios around faults that need no planned failover: (c) a sentinel killed, (d) both
 * replicas killed, (e) the master frozen with SIGSTOP, (f) a sentinel naming a replica as master.
 */
import { keyPrefix } from './chaos-failover.js'
import {
  gatewayView, masterSettings, missingOn, ok, presentOn, put, Recorder, runReaders, runWriters, sentinelNames, sleep,
  startGateway, withClient, within, type ChaosGateway, type MasterSettings, type Op
} from './chaos-load.js'
import { check, guarded, newRow, restore, type ChaosRow, type ScenarioOptions } from './chaos-row.js'
import { HOST, type NodeProc } from './topology-procs.js'
import type { Topology } from './topology.js'

const noLog = (): void => {}
const pick = <T>(list: T[]): T | undefined => list[Math.floor(Math.random() * list.length)]
const errorShaped = (x: Op): boolean => (x.status === 503 || x.status === 504) && x.errorShapeOk === true

/** PUTs `n` keys (10 at a time) through the gateway; throws unless every one is acknowledged. */
async function seed (url: string, prefix: string, n: number): Promise<string[]> {
  const keys = Array.from({ length: n }, (_, i) => `${prefix}:seed:${i}`)
  for (let i = 0; i < keys.length; i += 10) {
    const res = await Promise.all(keys.slice(i, i + 10).map(async k => await put(url, k)))
    const bad = res.filter(r => !ok(r))
    if (bad.length > 0) throw new Error(`seeding failed: ${new Recorder().summarize(bad)}`)
  }
  return keys
}

/** Runs `loads` and `fault` concurrently; both settle before this returns, errors rethrown. */
async function during (loads: Array<Promise<void>>, fault: Promise<void>): Promise<void> {
  const results = await Promise.allSettled([...loads, fault])
  for (const r of results) if (r.status === 'rejected') throw r.reason
}

function fill (row: ChaosRow, recs: Recorder[]): void {
  row.requests = recs.reduce((n, r) => n + r.ops.length, 0)
  row.failures = recs.reduce((n, r) => n + r.failed().length, 0)
  row.longestRequestMs = Math.max(0, ...recs.map(r => r.longest()))
}

async function checkLost (topo: Topology, row: ChaosRow, keys: string[], port?: number): Promise<void> {
  const node = port ?? (await topo.masterProc()).port
  const missing = await missingOn(topo, node, keys)
  row.lostAcknowledgedWrites = missing.length
  check(row, '0 acknowledged writes lost', missing.length === 0,
    `${missing.length} of ${keys.length} missing on :${node}${missing.length > 0 ? `, e.g. ${missing.slice(0, 5).join(' ')}` : ''}`)
}

/** c. One sentinel killed (SIGKILL) under PUT+GET load: no request may fail. */
export async function killSentinel (topo: Topology, o: ScenarioOptions = {}): Promise<ChaosRow> {
  const log = o.log ?? noLog
  const row = newRow('c. one sentinel killed')
  const rec = new Recorder()
  let t0 = 0
  await guarded(row, 'sentinel kill run', async () => {
    const gw = await startGateway(topo)
    try {
      const victim = topo.sentinels.find(s => s.alive)!
      const until = Date.now() + (o.durationMs ?? 4000)
      t0 = Date.now() + 500
      await during([
        runWriters(gw.url, rec, keyPrefix('c'), o.writers ?? 5, { until }),
        runReaders(gw.url, rec, o.readers ?? 2, () => pick(rec.acked), { until })
      ], sleep(500).then(async () => { await topo.kill(victim, 'SIGKILL'); log(`c: killed sentinel :${victim.port}`) }))
      const view = await gatewayView(gw.url)
      row.notes.push(`${rec.of('put').length} PUTs, ${rec.of('get').length} GETs; gateway master afterwards :${view.master?.port}`)
    } finally {
      await gw.close()
    }
    fill(row, [rec])
    check(row, '0 failed requests', row.failures === 0 && row.requests > 0,
      `${row.requests} requests, failed: ${rec.summarize(rec.failed())}${row.failures > 0 ? ` (from the kill: ${rec.describe(rec.failed(), t0)})` : ''}`)
  })
  await restore(topo, row, log)
  await guarded(row, 'lost check', async () => await checkLost(topo, row, rec.acked))
  return row
}

/** d. Both replicas killed: reads fall back to the master, writes resume once the sentinels mark them down. */
export async function killReplicas (topo: Topology, o: ScenarioOptions & { killAtMs?: number } = {}): Promise<ChaosRow> {
  const log = o.log ?? noLog
  const row = newRow('d. both replicas killed')
  const writes = new Recorder()
  const reads = new Recorder()
  let keys: string[] = []
  await guarded(row, 'replica kill run', async () => {
    const settings = await masterSettings(topo)
    const master = await topo.masterProc()
    const gw = await startGateway(topo)
    let killedAt = 0
    let killDone = 0
    try {
      const seeded = await seed(gw.url, keyPrefix('d'), 50)
      keys = seeded
      const until = Date.now() + (o.durationMs ?? 6000)
      await during([
        runWriters(gw.url, writes, keyPrefix('d'), o.writers ?? 3, { until, pauseOnFailureMs: 50 }),
        runReaders(gw.url, reads, o.readers ?? 3, () => pick(seeded), { until })
      ], sleep(o.killAtMs ?? 1000).then(async () => {
        const victims = topo.redis.filter(r => r.alive && r.port !== master.port)
        killedAt = Date.now()
        await Promise.all(victims.map(async v => await topo.kill(v, 'SIGKILL')))
        killDone = Date.now()
        log(`d: killed replicas ${victims.map(v => `:${v.port}`).join(' ')}`)
      }))
      const view = await gatewayView(gw.url)
      row.notes.push(`gateway requiredReplicas at the end: ${view.requiredReplicas}`)
    } finally {
      await gw.close()
    }
    keys = [...keys, ...writes.acked]
    fill(row, [writes, reads])
    row.recoveryMs = writes.firstAckAfter(killedAt)
    check(row, '0 failed GETs', reads.failed().length === 0 && reads.ops.length > 0, `${reads.ops.length} GETs, failed: ${reads.summarize(reads.failed())}${reads.failed().length > 0 ? ` (from the kill: ${reads.describe(reads.failed(), killedAt)})` : ''}`)
    const notMaster = reads.ops.filter(x => x.start >= killDone && x.servedBy !== 'master')
    check(row, 'GETs after the kill are served by the master', notMaster.length === 0,
      `${notMaster.length} of ${reads.ops.filter(x => x.start >= killDone).length} not X-Served-By: master (${reads.summarize(notMaster)})`)
    const settle = killedAt + settings.downAfterMs + 2000
    const late = writes.ops.filter(x => x.start >= settle)
    const lateBad = late.filter(x => !ok(x))
    check(row, `PUTs succeed again from down-after (${settings.downAfterMs}) + 2000 ms after the kill`, late.length > 0 && lateBad.length === 0,
      `${late.length} PUTs sent from then on, failed: ${writes.summarize(lateBad)}${lateBad.length > 0 ? ` (from the kill: ${writes.describe(lateBad, killedAt)})` : ''}`)
    row.notes.push(`writes: ${writes.summarize(writes.ops)}, ${writes.ackedWithoutReplica().length} of them acknowledged with 0 replicas (expected once both are down); ` +
      `first acknowledged PUT sent after the kill completed ${row.recoveryMs ?? 'never'} ms after it (recovery)`)
  })
  await restore(topo, row, log)
  await guarded(row, 'lost check', async () => await checkLost(topo, row, keys))
  return row
}

export interface FreezeOptions extends ScenarioOptions { commandTimeoutMs?: number; retryBudgetMs?: number; breakerResetMs?: number }

/** e. The master frozen with SIGSTOP: requests stay bounded, the breaker opens, service resumes after SIGCONT. */
export async function freezeMaster (topo: Topology, o: FreezeOptions = {}): Promise<ChaosRow> {
  const log = o.log ?? noLog
  const row = newRow('e. master frozen (SIGSTOP)')
  const rec = new Recorder()
  const cmdMs = o.commandTimeoutMs ?? 500
  const budgetMs = o.retryBudgetMs ?? 1500
  let victim: NodeProc | undefined
  let refused: string[] = []
  await guarded(row, 'freeze run', async () => {
    const gw = await startGateway(topo, {
      REDIS_COMMAND_TIMEOUT_MS: String(cmdMs), REQUEST_RETRY_BUDGET_MS: String(budgetMs), BREAKER_RESET_TIMEOUT_MS: String(o.breakerResetMs ?? 2000)
    })
    const prefix = keyPrefix('e')
    try {
      victim = await topo.masterProc()
      const frozen = victim
      const node = `${HOST}:${frozen.port}`
      // Keys for the master reads, written on Redis itself: the gateway's breaker sees no extra successes.
      const seeded = Array.from({ length: 20 }, (_, i) => `${prefix}:seed:${i}`)
      await withClient(topo, frozen.port, async c => { await c.mset(...seeded.flatMap(k => [k, k])); await c.call('WAIT', '2', '2000') })
      const warm = await put(gw.url, `${prefix}:warm`)
      if (!ok(warm)) throw new Error(`the gateway does not write before the freeze: ${rec.summarize([warm])}`)
      rec.acked.push(warm.key)
      const stoppedAt = Date.now()
      await topo.kill(frozen, 'SIGSTOP')
      log(`e: SIGSTOP master :${frozen.port}`)
      let openAt: number | null = null
      let contAt = 0
      const until = stoppedAt + (o.durationMs ?? 2000)
      const resume = async (): Promise<void> => {
        await sleep(until - Date.now())
        await topo.kill(frozen, 'SIGCONT')
        contAt = Date.now()
        log(`e: SIGCONT master :${frozen.port} after ${contAt - stoppedAt} ms`)
      }
      try {
        const poll = async (): Promise<void> => {
          for (let i = 0; i < 1000 && (contAt === 0 || Date.now() < contAt + 300); i++) {
            const v = await gatewayView(gw.url).catch(() => null)
            if (openAt === null && v?.breakers.some(b => b.node === node && b.state === 'open') === true) openAt = Date.now()
            await sleep(100)
          }
        }
        await during([
          runWriters(gw.url, rec, prefix, o.writers ?? 5, { until, pauseOnFailureMs: 50 }),
          runReaders(gw.url, rec, o.readers ?? 2, () => pick(seeded), { until, query: 'consistency=strong', pauseOnFailureMs: 50 }),
          poll()
        ], resume())
      } finally {
        if (contAt === 0) await topo.kill(frozen, 'SIGCONT')
      }
      let i = 0
      const resumed = await within(15_000, 200, async () => ok(rec.add(await put(gw.url, `${prefix}:resume:${i++}`))))
      row.recoveryMs = resumed === null ? null : Date.now() - contAt
      fill(row, [rec])
      const bound = budgetMs + cmdMs + 500
      const slow = rec.ops.filter(x => x.end - x.start > bound)
      check(row, `no request takes longer than ${bound} ms (budget + command timeout + 500)`, slow.length === 0,
        `longest ${row.longestRequestMs} ms; over the bound: ${rec.summarize(slow)}`)
      check(row, "the master's breaker opens (GET /topology)", openAt !== null, openAt === null ? 'never seen open' : `seen open ${openAt - stoppedAt} ms after SIGSTOP`)
      const puts503 = rec.of('put').filter(x => x.status === 503)
      const bad503 = puts503.filter(x => x.retryAfter === null || !/^\d+$/.test(x.retryAfter) || x.errorShapeOk !== true)
      check(row, 'writes get 503 with Retry-After and the JSON error shape', puts503.length > 0 && bad503.length === 0,
        `${puts503.length} PUTs answered 503 (${rec.summarize(puts503)}), ${bad503.length} without Retry-After or JSON shape`)
      const odd = rec.failed().filter(x => !errorShaped(x))
      check(row, 'every failure is a 503/504 with the JSON error shape', odd.length === 0, `others: ${rec.summarize(odd)}${odd.length > 0 ? ` (${rec.describe(odd, stoppedAt)})` : ''}`)
      check(row, 'a PUT succeeds within 15 s of SIGCONT', row.recoveryMs !== null && row.recoveryMs <= 15_000, `after ${row.recoveryMs ?? 'more than 15000'} ms`)
      refused = puts503.map(x => x.key)
      row.notes.push(`${rec.summarize(rec.ops)}; breaker open after ${openAt === null ? '-' : openAt - stoppedAt} ms; recovery = SIGCONT -> first acknowledged PUT`)
    } finally {
      await gw.close()
    }
  })
  await restore(topo, row, log, victim === undefined ? [] : [victim])
  await guarded(row, 'lost check', async () => {
    const master = await topo.masterProc()
    row.notes.push(master.port === victim?.port ? 'no failover: the frozen master resumed as master' : `sentinels failed over to :${master.port} meanwhile`)
    await checkLost(topo, row, rec.acked, master.port)
    const applied = await presentOn(topo, master.port, refused)
    check(row, 'a PUT answered 503 ("nothing written") is not on the master', applied.length === 0,
      `${applied.length} of ${refused.length} keys answered 503 are on :${master.port}${applied.length > 0 ? `, e.g. ${applied.slice(0, 3).join(' ')}` : ''}`)
  })
  return row
}

async function monitor (topo: Topology, s: NodeProc, port: number, st: MasterSettings): Promise<void> {
  await withClient(topo, s.port, async c => {
    const n = topo.masterName
    await c.call('SENTINEL', 'REMOVE', n).catch(() => 'not monitored')
    await c.call('SENTINEL', 'MONITOR', n, HOST, String(port), String(st.quorum))
    await c.call('SENTINEL', 'SET', n, 'down-after-milliseconds', String(st.downAfterMs), 'failover-timeout', String(st.failoverTimeoutMs),
      'parallel-syncs', String(st.parallelSyncs), ...(topo.password === undefined ? [] : ['auth-pass', topo.password]))
  })
}

/** f. One sentinel re-monitors the master set at a replica's address: the gateway must keep the real master. */
export async function lyingSentinel (topo: Topology, o: ScenarioOptions = {}): Promise<ChaosRow> {
  const log = o.log ?? noLog
  const row = newRow('f. sentinel names a replica')
  const rec = new Recorder()
  let rogue: NodeProc | undefined
  await guarded(row, 'lying sentinel run', async () => {
    const real = await topo.masterProc()
    const settings = await masterSettings(topo)
    const replica = topo.redis.find(r => r.alive && r.port !== real.port)!
    const liar = topo.sentinels.filter(s => s.alive).at(-1)!
    const gateways: ChaosGateway[] = [await startGateway(topo)]
    try {
      rogue = liar
      await monitor(topo, liar, replica.port, settings)
      const lie = `${HOST}:${replica.port}`
      check(row, 'the sentinel names the replica', await sentinelNames(topo, liar) === lie, `sentinel :${liar.port} names ${await sentinelNames(topo, liar)}`)
      log(`f: sentinel :${liar.port} now names replica :${replica.port} (real master :${real.port}, epoch ${settings.configEpoch})`)
      gateways.push(await startGateway(topo)) // discovers the topology while one sentinel lies
      const until = Date.now() + (o.durationMs ?? 3000)
      const wrong: string[] = []
      let samples = 0
      let lying = 0
      let relies = 0
      // With a config epoch above 0 the other sentinels' hello messages correct the liar within ~2 s:
      // tell the lie again whenever that happened, so it is told during the whole run.
      const keepLying = async (): Promise<void> => {
        for (let i = 0; i < 1000 && Date.now() < until; i++) {
          if (await sentinelNames(topo, liar) !== lie) { relies++; await monitor(topo, liar, replica.port, settings) }
          await sleep(100)
        }
      }
      const poll = async (): Promise<void> => {
        for (let i = 0; i < 1000 && Date.now() < until; i++) {
          const told = await sentinelNames(topo, liar) === lie
          for (const [g, gw] of gateways.entries()) {
            const v = await gatewayView(gw.url)
            samples++
            if (told) lying++
            if (v.master?.port !== real.port || !v.master.confirmed) wrong.push(`gateway ${g}: ${JSON.stringify(v.master)}`)
          }
          await sleep(100)
        }
      }
      await during([...gateways.map(async (gw, g) => await runWriters(gw.url, rec, `${keyPrefix('f')}:${g}`, o.writers ?? 5, { until })), poll()], keepLying())
      fill(row, [rec])
      row.notes.push(`the sentinel named the replica in ${lying} of ${samples} samples (config epoch ${settings.configEpoch}; the lie was told again ${relies} times after the other sentinels corrected it)`)
      check(row, 'the lie was seen during the run', lying > 0, `${lying} of ${samples} samples`)
      check(row, 'GET /topology names the real master throughout', wrong.length === 0 && samples > 0, `${samples} samples, wrong: ${wrong.slice(0, 3).join('; ') || 'none'}`)
      check(row, '0 failed PUTs', row.failures === 0 && row.requests > 0,
        `${row.requests} PUTs, failed: ${rec.summarize(rec.failed())}${row.failures > 0 ? ` (from the lie: ${rec.describe(rec.failed(), until - (o.durationMs ?? 3000))})` : ''}`)
      await checkLost(topo, row, rec.acked, real.port)
    } finally {
      for (const gw of gateways) await gw.close()
      if (rogue !== undefined) {
        const r = rogue
        await guarded(row, 'restore the sentinel', async () => await monitor(topo, r, (await topo.master()).port, settings))
      }
    }
  })
  await restore(topo, row, log)
  return row
}
