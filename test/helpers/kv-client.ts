/**
 * A tiny HTTP client for the gateway's /kv API in tests, plus shared assertions.
 * Every answer body is remembered (`seen`) so a test can check that none leaks a stack trace.
 */
import type { Redis } from 'ioredis'
import { request } from 'node:http'

export interface Answer {
  status: number
  headers: Headers
  body: Buffer
  text: string
  /** Parsed JSON when the body is JSON, else undefined. */
  json: unknown
  ms: number
}

export interface RequestOptions {
  body?: Buffer | string
  headers?: Record<string, string>
  /** Per-request timeout (default 15 s): a hung gateway fails the test instead of hanging it. */
  timeoutMs?: number
}

/** `/kv/<encoded key>` with an optional raw query string (without '?'). */
export const kvPath = (key: string, query = ''): string => `/kv/${encodeURIComponent(key)}${query === '' ? '' : `?${query}`}`

export class KvClient {
  /** Every answer received, in order (method, path, status, body text). */
  readonly seen: Array<{ method: string; path: string; status: number; text: string }> = []

  constructor (readonly base: string) {}

  async request (method: string, path: string, opts: RequestOptions = {}): Promise<Answer> {
    const started = performance.now()
    const init: RequestInit = {
      method,
      headers: opts.headers ?? {},
      signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000)
    }
    if (opts.body !== undefined) init.body = typeof opts.body === 'string' ? opts.body : new Uint8Array(opts.body)
    const res = await fetch(this.base + path, init)
    const body = Buffer.from(await res.arrayBuffer())
    const text = body.toString('utf8')
    let json: unknown
    if ((res.headers.get('content-type') ?? '').includes('application/json') && text !== '') {
      try { json = JSON.parse(text) } catch { json = undefined }
    }
    this.seen.push({ method, path, status: res.status, text })
    return { status: res.status, headers: res.headers, body, text, json, ms: performance.now() - started }
  }

  /** PUT raw bytes; `contentType` defaults to application/octet-stream. */
  async put (key: string, value: Buffer | string, opts: { query?: string; headers?: Record<string, string>; contentType?: string } = {}): Promise<Answer> {
    return await this.request('PUT', kvPath(key, opts.query), {
      body: value,
      headers: { 'content-type': opts.contentType ?? 'application/octet-stream', ...(opts.headers ?? {}) }
    })
  }

  async get (key: string, query = '', headers: Record<string, string> = {}): Promise<Answer> {
    return await this.request('GET', kvPath(key, query), { headers })
  }

  async del (key: string, query = ''): Promise<Answer> {
    return await this.request('DELETE', kvPath(key, query))
  }

  async topology (): Promise<TopologyView> {
    const r = await this.request('GET', '/topology')
    if (r.status !== 200) throw new Error(`/topology answered ${r.status}: ${r.text}`)
    return r.json as TopologyView
  }
}

/** The parts of GET /topology the tests look at. */
export interface TopologyView {
  masterName: string
  master: { host: string; port: number; confirmed: boolean } | null
  requiredReplicas: number
  failoverInProgress: boolean
  replicas: Array<{ host: string; port: number; healthy: boolean; reason?: string; attached: boolean }>
  sentinels: Array<{ host: string; port: number; reachable: boolean }>
  breakers: Array<{ node: string; state: string }>
  lastFailover: { at: string; from: { host: string; port: number } | null; to: { host: string; port: number } } | null
  readStrategy: string
}

/** Minimal slice of tap's Test used by the assertions below. */
/* eslint-disable @typescript-eslint/no-explicit-any */
interface Asserter {
  equal: (found: any, wanted: any, message: string) => boolean
  same: (found: any, wanted: any, message: string) => boolean
  match: (found: any, pattern: any, message: string) => boolean
  ok: (found: any, message: string) => boolean
  notOk: (found: any, message: string) => boolean
}

export const STACK_MARKER = '    at '

/** Asserts `r` is an error answer with `status`, JSON body exactly `{error:{code,message}}`, no stack trace. */
export function assertError (t: Asserter, r: Answer, status: number, code: string, what: string): void {
  t.equal(r.status, status, `${what}: status ${status}`)
  t.match(r.headers.get('content-type') ?? '', /^application\/json/, `${what}: JSON content type`)
  const body = r.json as { error?: { code?: unknown; message?: unknown } } | undefined
  t.same(Object.keys(body ?? {}), ['error'], `${what}: body has exactly the key "error" (got ${r.text.slice(0, 200)})`)
  t.same(Object.keys(body?.error ?? {}).sort(), ['code', 'message'], `${what}: error has exactly code and message`)
  t.equal(body?.error?.code, code, `${what}: code ${code}`)
  t.ok(typeof body?.error?.message === 'string' && body.error.message.length > 0, `${what}: a non-empty message`)
  t.notOk(r.text.includes(STACK_MARKER), `${what}: no stack trace in the body`)
}

/** status, error code and whether the body is exactly `{error:{code,message}}`: one value to compare in one assertion. */
export function errorSummary (r: Answer): { status: number; code: unknown; shape: 'gateway' | string } {
  const body = r.json as { error?: { code?: unknown; message?: unknown } } | undefined
  const ok = body !== undefined && Object.keys(body).join() === 'error' && typeof body.error === 'object' &&
    Object.keys(body.error).sort().join() === 'code,message' && typeof body.error.message === 'string'
  return { status: r.status, code: body?.error?.code ?? (body as { code?: unknown } | undefined)?.code, shape: ok ? 'gateway' : r.text.slice(0, 120) }
}

/** `calls` of `cmdstat_<cmd>` in INFO commandstats (0 when the command was never called). */
export async function commandCalls (c: Redis, cmd: string): Promise<number> {
  const info = await c.info('commandstats')
  const m = new RegExp(`^cmdstat_${cmd}:calls=(\\d+)`, 'm').exec(info)
  return m === null ? 0 : Number(m[1])
}

/** Polls `check` every `everyMs` until it returns a value (not undefined) or `timeoutMs` passes. */
export async function pollUntil<T> (timeoutMs: number, everyMs: number, check: () => Promise<T | undefined>): Promise<{ value: T | undefined; ms: number }> {
  const start = Date.now()
  for (;;) {
    const v = await check().catch(() => undefined)
    if (v !== undefined) return { value: v, ms: Date.now() - start }
    if (Date.now() - start >= timeoutMs) return { value: undefined, ms: Date.now() - start }
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
}

/**
 * The rate limiter's own client connects in the background (it fails open meanwhile: no RateLimit
 * headers). True once two GETs in a row carry RateLimit-Remaining counting down by one.
 */
export async function limiterCounts (url: string, key: string): Promise<boolean> {
  const remaining = async (): Promise<number | null> => {
    const r = await fetch(`${url}/kv/${encodeURIComponent(key)}`)
    await r.arrayBuffer()
    const h = r.headers.get('ratelimit-remaining')
    return h === null ? null : Number(h)
  }
  const { value } = await pollUntil(10_000, 200, async () => {
    const a = await remaining()
    const b = await remaining()
    return a !== null && b === a - 1 ? true : undefined
  })
  return value === true
}

/**
 * PUT `value` under `key` through the gateway at `base` (created, confirmed by both replicas), then
 * 4 GETs: each answers the value, served by a replica. `what` names the setup in the messages.
 */
export async function putThenReadFromReplicas (t: Asserter, base: string, key: string, value: string, what: string): Promise<void> {
  const put = await fetch(`${base}${kvPath(key)}`, { method: 'PUT', body: value, headers: { 'content-type': 'application/octet-stream' } })
  t.equal(put.status, 201, `${what}: PUT works`)
  t.equal((await put.json() as { replicas: number }).replicas, 2, `${what}: both replicas confirmed it`)
  const servedBy: string[] = []
  for (let i = 0; i < 4; i++) {
    const got = await fetch(`${base}${kvPath(key)}`)
    t.equal(got.status, 200, `${what}: GET answers 200`)
    t.equal(await got.text(), value, `${what}: GET answers the value`)
    servedBy.push(got.headers.get('x-served-by') ?? '')
  }
  t.same(servedBy, ['replica', 'replica', 'replica', 'replica'], `${what}: reads are served by the replicas`)
}

/** Size of the body slowPut sends. */
export const SLOW_PUT_BYTES = 4 * 64 * 1024

/**
 * A PUT of SLOW_PUT_BYTES (bytes `fill`) sent in 4 chunks 300 ms apart, on a connection of its own;
 * `halfway` runs after the second chunk, when the request is surely in flight (e.g. to send SIGTERM).
 */
export async function slowPut (base: string, path: string, halfway: () => void, fill = 7): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(base)
  const chunk = Buffer.alloc(SLOW_PUT_BYTES / 4, fill)
  return await new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, method: 'PUT', path, agent: false, headers: { 'content-length': String(SLOW_PUT_BYTES) } }, res => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    let sent = 0
    const next = (): void => {
      req.write(chunk)
      if (++sent === 4) { req.end(); return }
      if (sent === 2) halfway()
      setTimeout(next, 300)
    }
    next()
  })
}
