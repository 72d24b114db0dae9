/**
 * Chaos scenarios that move the master: (a) a planned failover under write load, through the gateway
 * and, for comparison, with a plain ioredis sentinel client; (b) kill -9 of the master.
 */
import { Redis } from 'ioredis'
import {
  masterSettings, missingOn, ok, put, Recorder, runReaders, runWriters, sleep, startGateway, timeline, watchGateway, type Op
} from './chaos-load.js'
import { check, guarded, newRow, restore, type ChaosRow, type ScenarioOptions } from './chaos-row.js'
import type { Topology } from './topology.js'

/** Unique per process, run and scenario: keys never collide with another run's. */
export const keyPrefix = (scenario: string): string => `chaos:${process.pid}:${Date.now().toString(36)}:${scenario}`

const noLog = (): void => {}

export interface FailoverOptions extends ScenarioOptions {
  /** When the failover is triggered, from the start of the load. */
  failoverAtMs?: number
  /** The plain ioredis comparison run (its own failover); false skips it. */
  plain?: false | { durationMs?: number; writers?: number; failoverAtMs?: number }
}

/** Runs `load` and, `atMs` after its start, a failover; both always settle before this returns. */
async function loadWithFailover (topo: Topology, atMs: number, load: Promise<void>): Promise<{ startedAt: number; from: number; to: number; ms: number }> {
  let startedAt = 0
  const failover = sleep(atMs).then(async () => { startedAt = Date.now(); return await topo.failover() })
  const [l, f] = await Promise.allSettled([load, failover])
  if (l.status === 'rejected') throw l.reason
  if (f.status === 'rejected') throw f.reason
  return { startedAt, ...f.value }
}

/**
 * After a failover under load: waits until the topology converged, looks up every acknowledged key
 * on the master, and fills the row's counts. `loadStart`: where the recorder's last-end search starts.
 */
async function settleFailover (topo: Topology, rec: Recorder, row: ChaosRow, fo: { startedAt: number }, loadStart: number):
Promise<{ masterPort: number; missing: string[]; convergedMs: number }> {
  const loadEnd = rec.lastEnd(loadStart)
  const tc = Date.now()
  await topo.waitConverged(60_000)
  const master = await topo.masterProc()
  const missing = await missingOn(topo, master.port, rec.acked)
  row.requests = rec.ops.length
  row.failures = rec.failed().length
  row.lostAcknowledgedWrites = missing.length
  row.longestRequestMs = rec.longest()
  row.recoveryMs = rec.longestAckGap(fo.startedAt, loadEnd)
  return { masterPort: master.port, missing, convergedMs: Date.now() - tc }
}

/** a. SENTINEL FAILOVER while 20 writers PUT new keys through the gateway; every acknowledged key must survive. */
export async function plannedFailover (topo: Topology, o: FailoverOptions = {}): Promise<ChaosRow> {
  const log = o.log ?? noLog
  const row = newRow('a. planned failover')
  const durationMs = o.durationMs ?? 12_000
  const writers = o.writers ?? 20
  const rec = new Recorder()
  await guarded(row, 'gateway run', async () => {
    const gw = await startGateway(topo)
    const t0 = Date.now()
    let fo: Awaited<ReturnType<typeof loadWithFailover>>
    let changes: Awaited<ReturnType<typeof watchGateway>> = []
    try {
      let done = false
      const watch = watchGateway(gw.url, () => done)
      try {
        fo = await loadWithFailover(topo, o.failoverAtMs ?? 3000,
          runWriters(gw.url, rec, keyPrefix('a'), writers, { until: t0 + durationMs }))
      } finally {
        done = true
        changes = await watch
      }
    } finally {
      await gw.close()
    }
    log(`a: failover :${fo.from} -> :${fo.to} in ${fo.ms} ms; ${rec.ops.length} PUTs, ${rec.acked.length} acknowledged`)
    const { masterPort, missing, convergedMs } = await settleFailover(topo, rec, row, fo, t0)
    const ackedAfter = rec.ops.filter(x => ok(x) && x.start > fo.startedAt + fo.ms).length
    row.notes.push(`gateway: failover :${fo.from} -> :${fo.to} took ${fo.ms} ms; converged ${convergedMs} ms after the load; ` +
      `recovery = longest gap between acknowledged writes after the failover started; keys checked on :${masterPort}`,
      `gateway /topology from the failover start: ${timeline(changes, fo.startedAt)}`,
      `PUTs acknowledged with 0 replicas (answer "replicas": 0): ${rec.ackedWithoutReplica().length}${rec.ackedWithoutReplica().length > 0 ? ` at ${rec.ackedWithoutReplica().slice(0, 3).map(x => `+${x.end - fo.startedAt}ms`).join(' ')} from the failover start` : ''}`)
    check(row, 'the master moved', fo.to !== fo.from && masterPort === fo.to, `from :${fo.from} to :${fo.to}, sentinels now name :${masterPort}`)
    check(row, 'writes were acknowledged by the new master after the failover', ackedAfter > 0, `${ackedAfter} acknowledged PUTs started after the switch`)
    // The old master keeps reporting master for seconds after the switch, while the sentinels list it
    // as a replica they could promote: writes wait for it to rejoin (issue 11 req 1) and answer 503
    // (nothing applied) if it takes longer than the retry budget. Nothing else may fail.
    const held = rec.failed().filter(x => x.status === 503 && x.code === 'GW_ERR_REDIS_UNAVAILABLE')
    const other = rec.failed().filter(x => !held.includes(x))
    check(row, 'no failed PUT other than 503 (nothing applied) while the old master rejoins', other.length === 0,
      `${held.length} held writes answered 503${held.length > 0 ? ` (from the failover start: ${rec.describe(held, fo.startedAt)})` : ''}; other failures: ${rec.summarize(other)}`)
    check(row, '0 acknowledged writes lost', missing.length === 0, `${missing.length} of ${rec.acked.length} missing on :${masterPort}${missing.length > 0 ? `, e.g. ${missing.slice(0, 5).join(' ')}` : ''}`)
  })
  if (o.plain !== false) row.comparison = await plainClientFailover(topo, o.plain ?? {}, log)
  await restore(topo, row, log)
  return row
}

/** The same failover with a plain ioredis sentinel client doing SET directly: its losses are reported, not checked. */
export async function plainClientFailover (topo: Topology, o: { durationMs?: number; writers?: number; failoverAtMs?: number }, log: (l: string) => void = noLog): Promise<ChaosRow> {
  const row = newRow('a. same failover, plain ioredis client')
  const rec = new Recorder()
  await guarded(row, 'plain client run', async () => {
    // A second failover needs a converged topology, sentinels' replica views included (strict).
    await topo.waitConverged(60_000, { strict: true })
    const client = new Redis({
      sentinels: topo.sentinels.map(s => ({ host: s.host, port: s.port })),
      name: topo.masterName,
      commandTimeout: 10_000, // bounds every SET
      ...(topo.password === undefined ? {} : { password: topo.password }),
      ...(topo.sentinelPassword === undefined ? {} : { sentinelPassword: topo.sentinelPassword })
    })
    client.on('error', () => {})
    const prefix = keyPrefix('plain')
    let fo: Awaited<ReturnType<typeof loadWithFailover>>
    try {
      await Promise.race([client.ping(), sleep(10_000).then(() => { throw new Error('plain client not ready within 10 s') })])
      const until = Date.now() + (o.durationMs ?? 12_000)
      const writers = Array.from({ length: o.writers ?? 20 }, async (_, w) => {
        for (let i = 0; i < 50_000 && Date.now() < until; i++) {
          const key = `${prefix}:${w}:${i}`
          const op: Op = { kind: 'put', key, start: Date.now(), end: 0, status: 0, retryAfter: null, servedBy: null }
          try {
            const r = await client.set(key, key)
            op.status = r === 'OK' ? 200 : 0
            if (r !== 'OK') op.error = String(r)
          } catch (err) {
            op.error = (err as Error).message
          }
          op.end = Date.now()
          rec.add(op)
          if (op.status !== 200) await sleep(20)
        }
      })
      fo = await loadWithFailover(topo, o.failoverAtMs ?? 3000, Promise.all(writers).then(() => {}))
    } finally {
      client.disconnect()
    }
    const { masterPort, missing, convergedMs } = await settleFailover(topo, rec, row, fo, fo.startedAt)
    row.notes.push(`plain client: failover :${fo.from} -> :${fo.to} took ${fo.ms} ms; converged ${convergedMs} ms after the load; ` +
      `${rec.acked.length} SETs acknowledged, ${missing.length} missing on :${masterPort} (reported, not a requirement)`)
    log(`a (plain): failover :${fo.from} -> :${fo.to}; ${rec.acked.length} acknowledged, ${missing.length} lost`)
  })
  return row
}

export interface KillOptions extends ScenarioOptions {
  /** When the master is killed, from the start of the load. */
  killAtMs?: number
  /** Keys written before the load, read back during the outage. */
  seedKeys?: number
}

/** b. kill -9 of the master under write load, with readers of keys written before the kill. */
export async function killMaster (topo: Topology, o: KillOptions = {}): Promise<ChaosRow> {
  const log = o.log ?? noLog
  const row = newRow('b. kill -9 master')
  const writes = new Recorder()
  const reads = new Recorder()
  let victim: Topology['redis'][number] | undefined
  await guarded(row, 'kill -9 run', async () => {
    const settings = await masterSettings(topo)
    const gw = await startGateway(topo)
    const prefix = keyPrefix('b')
    let killedAt = 0
    try {
      const seeded = Array.from({ length: o.seedKeys ?? 100 }, (_, i) => `${prefix}:seed:${i}`)
      for (let i = 0; i < seeded.length; i += 10) {
        const res = await Promise.all(seeded.slice(i, i + 10).map(async k => await put(gw.url, k)))
        const bad = res.filter(r => !ok(r))
        if (bad.length > 0) throw new Error(`seeding failed before the kill: ${writes.summarize(bad)}`)
      }
      const until = Date.now() + (o.durationMs ?? 8000)
      const load = Promise.all([
        runWriters(gw.url, writes, prefix, o.writers ?? 10, { until, pauseOnFailureMs: 50 }),
        runReaders(gw.url, reads, o.readers ?? 2, () => seeded[Math.floor(Math.random() * seeded.length)], { until })
      ])
      const kill = sleep(o.killAtMs ?? 2000).then(async () => {
        victim = await topo.masterProc()
        killedAt = Date.now()
        await topo.kill(victim, 'SIGKILL')
        log(`b: killed master :${victim.port} (pid ${victim.pid})`)
      })
      let done = false
      const watch = watchGateway(gw.url, () => done)
      const [l, k] = await Promise.allSettled([load, kill])
      done = true
      const changes = await watch
      if (l.status === 'rejected') throw l.reason
      if (k.status === 'rejected') throw k.reason
      row.requests = writes.ops.length + reads.ops.length
      row.failures = writes.failed().length + reads.failed().length
      row.longestRequestMs = Math.max(writes.longest(), reads.longest())
      row.recoveryMs = writes.firstAckAfter(killedAt)
      // Two down-afters: one to fail the master over, one for the sentinels to flag the dead old
      // master down again as a replica of the new one (until then it is a node they list and could
      // promote, and writes wait for it: issue 11 req 1).
      const limit = 2 * settings.downAfterMs + 3000
      check(row, `writes succeed again within 2 x down-after (${settings.downAfterMs}) + 3000 ms of the kill`, row.recoveryMs !== null && row.recoveryMs <= limit,
        `first acknowledged PUT sent after the kill completed ${row.recoveryMs ?? 'never'} ms after it (limit ${limit})`)
      const badGets = reads.failed()
      check(row, 'every GET of a key written before the kill succeeds during the outage', badGets.length === 0 && reads.ops.length > 0,
        `${reads.ops.length} GETs, failed: ${reads.summarize(badGets)}${badGets.length > 0 ? ` (from the kill: ${reads.describe(badGets, killedAt)})` : ''}`)
      const oddPuts = writes.failed().filter(x => !((x.status === 503 || x.status === 504) && x.errorShapeOk === true))
      check(row, 'failed PUTs answer 503/504 with the JSON error shape', oddPuts.length === 0,
        `other failures: ${writes.summarize(oddPuts)}${oddPuts.length > 0 ? ` (from the kill: ${writes.describe(oddPuts, killedAt)})` : ''}`)
      row.notes.push(`failed PUTs during the outage (allowed): ${writes.summarize(writes.failed())}; ` +
        `${reads.ops.length} GETs (${reads.summarize(reads.ops.filter(ok))}); recovery = kill -> first acknowledged PUT sent after it`,
      `gateway /topology from the kill: ${timeline(changes, killedAt)}`,
      `PUTs acknowledged with 0 replicas (answer "replicas": 0): ${writes.ackedWithoutReplica().length}`)
      await gw.close()
      if (victim !== undefined) await topo.restart(victim)
      await topo.waitConverged(60_000)
      const master = await topo.masterProc()
      const missing = await missingOn(topo, master.port, [...seeded, ...writes.acked])
      row.lostAcknowledgedWrites = missing.length
      check(row, 'a replica was promoted', victim !== undefined && master.port !== victim.port, `killed :${victim?.port}, master now :${master.port}`)
      check(row, '0 acknowledged writes lost', missing.length === 0,
        `${missing.length} of ${seeded.length + writes.acked.length} missing on :${master.port}${missing.length > 0 ? `, e.g. ${missing.slice(0, 5).join(' ')}` : ''}`)
    } finally {
      await gw.close()
    }
  })
  await restore(topo, row, log)
  return row
}
