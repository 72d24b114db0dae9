/**
 * Load generation and bookkeeping for the chaos scenarios (test/helpers/chaos.ts): HTTP writers and
 * readers against the gateway, every request recorded (status, error code, headers, timing), and the
 * check that acknowledged keys are on a Redis node. Every loop is bounded in count and in time.
 */
import type { Redis } from 'ioredis'
import { startInProcess } from './gateway.js'
import { kv, type NodeProc } from './topology-procs.js'
import type { Topology } from './topology.js'

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** Longest one HTTP request may take before the load generator gives up on it (counted as failed). */
export const REQUEST_TIMEOUT_MS = 15_000
/** Hard cap on requests per loop, whatever the duration. */
export const MAX_OPS_PER_LOOP = 50_000

/** One HTTP request as the client saw it. Times are Date.now() values. */
export interface Op {
  kind: 'put' | 'get'
  key: string
  start: number
  end: number
  /** HTTP status, 0 when fetch itself failed (connection error, timeout). */
  status: number
  /** `error.code` and `error.message` of a JSON error body. */
  code?: string
  message?: string
  /** The error body is exactly {error: {code, message}} with a JSON content type. */
  errorShapeOk?: boolean
  retryAfter: string | null
  servedBy: string | null
  /** GET: the body equals the expected value. */
  valueOk?: boolean
  /** fetch error message (status 0). */
  error?: string
  /** Successful PUT: the `replicas` count of the answer (replicas that confirmed the write). */
  replicas?: number
}

export const ok = (op: Op): boolean => op.status >= 200 && op.status < 300 && op.valueOk !== false
export const ms = (op: Op): number => op.end - op.start

async function request (kind: Op['kind'], url: string, key: string, query: string, init: RequestInit, expect?: string): Promise<Op> {
  const start = Date.now()
  const op: Op = { kind, key, start, end: start, status: 0, retryAfter: null, servedBy: null }
  try {
    const path = `/kv/${encodeURIComponent(key)}${query === '' ? '' : `?${query}`}`
    const res = await fetch(url + path, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
    const text = await res.text()
    op.status = res.status
    op.retryAfter = res.headers.get('retry-after')
    op.servedBy = res.headers.get('x-served-by')
    if (res.status >= 400) {
      op.errorShapeOk = false
      try {
        const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }
        if (typeof body.error?.code === 'string') op.code = body.error.code
        if (typeof body.error?.message === 'string') op.message = body.error.message
        op.errorShapeOk = /^application\/json/.test(res.headers.get('content-type') ?? '') &&
          Object.keys(body).join() === 'error' && Object.keys(body.error ?? {}).sort().join() === 'code,message' &&
          typeof body.error?.message === 'string' && body.error.message !== ''
      } catch { /* not JSON: errorShapeOk stays false */ }
    } else if (expect !== undefined) {
      op.valueOk = text === expect
    } else if (kind === 'put') {
      try { op.replicas = Number((JSON.parse(text) as { replicas?: unknown }).replicas) } catch { /* not JSON */ }
    }
  } catch (err) {
    op.error = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
  }
  op.end = Date.now()
  return op
}

/** PUT `value` (default: the key itself) at `key`. */
export const put = async (url: string, key: string, value = key): Promise<Op> =>
  await request('put', url, key, '', { method: 'PUT', body: value, headers: { 'content-type': 'application/octet-stream' } })

/** GET `key` (optional raw query string), expecting the body `expect` (default: the key itself). */
export const get = async (url: string, key: string, query = '', expect = key): Promise<Op> =>
  await request('get', url, key, query, { method: 'GET' }, expect)

/** Everything the load loops of one scenario did. */
export class Recorder {
  readonly ops: Op[] = []
  /** Keys whose PUT was acknowledged (2xx), in acknowledgement order. */
  readonly acked: string[] = []

  add (op: Op): Op {
    this.ops.push(op)
    if (op.kind === 'put' && ok(op)) this.acked.push(op.key)
    return op
  }

  /** When the last request ended (`fallback` when none did). */
  lastEnd (fallback: number): number { return this.ops.reduce((m, o) => Math.max(m, o.end), fallback) }

  /** ms from `at` until the first successful PUT sent at or after `at` completed; null when none did. */
  firstAckAfter (at: number): number | null {
    return this.ops.reduce<number | null>((m, o) => o.kind === 'put' && ok(o) && o.start >= at && (m === null || o.end - at < m) ? o.end - at : m, null)
  }

  of (kind: Op['kind']): Op[] { return this.ops.filter(o => o.kind === kind) }
  failed (kind?: Op['kind']): Op[] { return this.ops.filter(o => (kind === undefined || o.kind === kind) && !ok(o)) }
  longest (kind?: Op['kind']): number {
    return this.ops.filter(o => kind === undefined || o.kind === kind).reduce((m, o) => Math.max(m, ms(o)), 0)
  }

  /** Longest stretch without a successful write completing, within [from, to]. */
  longestAckGap (from: number, to: number): number {
    const ends = this.ops.filter(o => o.kind === 'put' && ok(o) && o.end >= from && o.end <= to).map(o => o.end).sort((a, b) => a - b)
    let prev = from
    let gap = 0
    for (const e of [...ends, to]) { gap = Math.max(gap, e - prev); prev = e }
    return gap
  }

  /** Acknowledged PUTs whose answer says no replica confirmed them. */
  ackedWithoutReplica (): Op[] { return this.ops.filter(o => o.kind === 'put' && ok(o) && o.replicas === 0) }

  /** Up to `n` failures as "+<ms from t0> <status> <code>: <message>", for a check's detail. */
  describe (ops: Op[], t0: number, n = 3): string {
    return ops.slice(0, n).map(o => `+${o.start - t0}ms..+${o.end - t0}ms ${o.status} ${o.code ?? o.error ?? ''}${o.message !== undefined ? `: ${o.message}` : ''}`).join('; ')
  }

  /** Short text like "503 GW_ERR_BREAKER_OPEN x12, 0 TimeoutError x1". */
  summarize (ops: Op[]): string {
    const counts = new Map<string, number>()
    for (const o of ops) {
      const k = `${o.kind.toUpperCase()} ${o.status}${o.code !== undefined ? ` ${o.code}` : ''}${o.error !== undefined ? ` ${o.error.split(':')[0]}` : ''}${o.valueOk === false ? ' wrong-value' : ''}`
      counts.set(k, (counts.get(k) ?? 0) + 1)
    }
    return [...counts.entries()].map(([k, n]) => `${k} x${n}`).join(', ') || 'none'
  }
}

export interface LoopOptions {
  /** Loops stop starting requests at this Date.now() time. */
  until: number
  /** Or as soon as this returns true. */
  stop?: () => boolean
  /** Pause after a failed request (a client backing off), ms. */
  pauseOnFailureMs?: number
}

const running = (o: LoopOptions, i: number): boolean => i < MAX_OPS_PER_LOOP && Date.now() < o.until && !(o.stop?.() ?? false)

/** `writers` concurrent loops, each PUTting new keys `${prefix}:${writer}:${i}` (value = key). */
export async function runWriters (url: string, rec: Recorder, prefix: string, writers: number, o: LoopOptions): Promise<void> {
  await Promise.all(Array.from({ length: writers }, async (_, w) => {
    for (let i = 0; running(o, i); i++) {
      const op = rec.add(await put(url, `${prefix}:${w}:${i}`))
      if (!ok(op) && (o.pauseOnFailureMs ?? 0) > 0) await sleep(o.pauseOnFailureMs!)
    }
  }))
}

/** `readers` concurrent loops, each GETting a key picked by `pick()` (value = key). */
export async function runReaders (url: string, rec: Recorder, readers: number, pick: () => string | undefined, o: LoopOptions & { query?: string }): Promise<void> {
  await Promise.all(Array.from({ length: readers }, async () => {
    for (let i = 0; running(o, i); i++) {
      const key = pick()
      if (key === undefined) { await sleep(10); continue }
      const op = rec.add(await get(url, key, o.query ?? ''))
      if (!ok(op) && (o.pauseOnFailureMs ?? 0) > 0) await sleep(o.pauseOnFailureMs!)
    }
  }))
}

/**
 * An in-process gateway for one scenario: REDIS_REFRESH_INTERVAL_MS=250, LOG_LEVEL silent unless
 * CHAOS_GATEWAY_LOG_LEVEL says otherwise (to diagnose a failing scenario: its logs go to stdout).
 */
export interface ChaosGateway { url: string; close(): Promise<void> }

export async function startGateway (topo: Topology, extra: Record<string, string> = {}): Promise<ChaosGateway> {
  const closers: Array<() => unknown> = []
  const gw = await startInProcess({ teardown: fn => { closers.push(fn) } }, topo, { LOG_LEVEL: process.env.CHAOS_GATEWAY_LOG_LEVEL ?? 'silent', REDIS_REFRESH_INTERVAL_MS: '250', ...extra })
  let closed: Promise<void> | undefined
  return {
    url: gw.url,
    close: async () => {
      closed ??= (async () => {
        for (const fn of closers.reverse()) await fn()
        // Workaround for a gateway bug (reported): a topology refresh still in flight when app.close()
        // runs re-opens node connection pools after Topology.close(), and they reconnect forever (a
        // tap file would never exit). Wait for that refresh, then close what it opened.
        await gw.app.topology.refresh()
        gw.app.connections.closeAll()
      })()
      await closed
    }
  }
}

/** The parts of the gateway's GET /topology the scenarios look at. */
export interface GatewayView {
  master: { host: string; port: number; confirmed: boolean } | null
  requiredReplicas: number
  failoverInProgress: boolean
  breakers: Array<{ node: string; state: string }>
}

export async function gatewayView (url: string): Promise<GatewayView> {
  const res = await fetch(`${url}/topology`, { signal: AbortSignal.timeout(5000) })
  if (res.status !== 200) throw new Error(`GET /topology answered ${res.status}`)
  return await res.json() as GatewayView
}

/**
 * Polls GET /topology every 100 ms until `stop()` (bounded: 2000 polls) and keeps the changes of
 * master / confirmed / failoverInProgress / requiredReplicas: a timeline for a scenario's notes.
 */
export async function watchGateway (url: string, stop: () => boolean): Promise<Array<{ at: number; state: string }>> {
  const changes: Array<{ at: number; state: string }> = []
  for (let i = 0; i < 2000 && !stop(); i++) {
    const v = await gatewayView(url).catch(() => null)
    const state = v === null ? 'no answer' : `master :${v.master?.port ?? '-'}${v.master?.confirmed === true ? '' : ' (unconfirmed)'} n=${v.requiredReplicas}${v.failoverInProgress ? ' failover' : ''}`
    if (changes.at(-1)?.state !== state) changes.push({ at: Date.now(), state })
    await sleep(100)
  }
  return changes
}

/** "+120ms master :1 n=2, +900ms ..." relative to `t0`. */
export const timeline = (changes: Array<{ at: number; state: string }>, t0: number): string =>
  changes.map(c => `${c.at - t0 >= 0 ? '+' : ''}${c.at - t0}ms ${c.state}`).join(', ')

/** Runs `fn` with a short-lived client to `port`, always closed afterwards. */
export async function withClient<T> (topo: Topology, port: number, fn: (c: Redis) => Promise<T>): Promise<T> {
  const c = topo.client(port)
  c.on('error', () => {})
  try {
    return await fn(c)
  } finally {
    c.disconnect()
  }
}

/** The keys (of `keys`) that node `port` does not hold with value = key (MGET in batches). */
export async function missingOn (topo: Topology, port: number, keys: string[]): Promise<string[]> {
  return await withClient(topo, port, async c => {
    const missing: string[] = []
    for (let i = 0; i < keys.length; i += 500) {
      const batch = keys.slice(i, i + 500)
      const values = await c.mget(...batch)
      values.forEach((v, j) => { if (v !== batch[j]) missing.push(batch[j]!) })
    }
    return missing
  })
}

/** The keys (of `keys`) that node `port` does hold. */
export async function presentOn (topo: Topology, port: number, keys: string[]): Promise<string[]> {
  if (keys.length === 0) return []
  const missing = new Set(await missingOn(topo, port, keys))
  return keys.filter(k => !missing.has(k))
}

/** The master set's settings as a live sentinel reports them. */
export interface MasterSettings { quorum: number; downAfterMs: number; failoverTimeoutMs: number; parallelSyncs: number; configEpoch: number }

export async function masterSettings (topo: Topology, via?: NodeProc): Promise<MasterSettings> {
  const s = via ?? topo.sentinels.find(x => x.alive)
  if (s === undefined) throw new Error('no live sentinel')
  const m = kv(await withClient(topo, s.port, async c => await c.call('SENTINEL', 'MASTER', topo.masterName)))
  return {
    quorum: Number(m.quorum),
    downAfterMs: Number(m['down-after-milliseconds']),
    failoverTimeoutMs: Number(m['failover-timeout']),
    parallelSyncs: Number(m['parallel-syncs']),
    configEpoch: Number(m['config-epoch'])
  }
}

/** What one sentinel names as the master ("host:port"), or its error. */
export async function sentinelNames (topo: Topology, s: NodeProc): Promise<string> {
  try {
    const r = await withClient(topo, s.port, async c => await c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', topo.masterName))
    return Array.isArray(r) ? `${String(r[0])}:${String(r[1])}` : 'unknown'
  } catch (err) {
    return `error: ${(err as Error).message}`
  }
}

/** Polls `check` every `everyMs` (bounded by `timeoutMs`); the elapsed ms when it returned true, else null. */
export async function within (timeoutMs: number, everyMs: number, check: () => Promise<boolean>): Promise<number | null> {
  const start = Date.now()
  for (let i = 0; i < 100_000; i++) {
    if (await check().catch(() => false)) return Date.now() - start
    if (Date.now() - start >= timeoutMs) return null
    await sleep(everyMs)
  }
  return null
}
