/**
 * Bounded load through the gateway: writers of NEW keys (PUT /kv, value = key) and readers of keys
 * already acknowledged (GET /kv, eventual and ?consistency=strong in turn). Every request is
 * recorded; every loop stops by itself at its deadline or after MAX_OPS_PER_LOOP requests.
 */
import { sleep } from './shell.js'

/** Longest one HTTP request may take before it counts as failed (the gateway answers within ~6 s). */
const REQUEST_TIMEOUT_MS = 15_000
/** Hard cap on requests per loop, whatever the duration. */
const MAX_OPS_PER_LOOP = 20_000
/** Readers pick among the most recently acknowledged keys (where a lost or stale key would show). */
const READ_WINDOW = 2000

export interface LoadOptions {
  url: string
  token: string
  /** Prefix of every key written (unique per scenario and mode). */
  keyPrefix: string
  /** Longest the loops run (stop() ends them earlier). */
  maxDurationMs: number
  /** Default 20. */
  writers?: number
  /** PUT/s over all writers. Default 250. */
  writeRate?: number
  /** Default 4. */
  readers?: number
  /** GET/s per reader. Default 25. */
  readRate?: number
}

export interface WriteRec { key: string; start: number; end: number; status: number; code?: string }
export interface ReadRec {
  key: string; start: number; end: number; status: number; strong: boolean
  /** 200 with a body other than the value written. */
  wrongValue: boolean
  servedBy: string | null
  /** x-cache: hit (near-cache), miss, bypass; null when absent. */
  cache?: string | null
  code?: string
}

export const acked = (w: WriteRec): boolean => w.status >= 200 && w.status < 300

export class Load {
  readonly writes: WriteRec[] = []
  readonly reads: ReadRec[] = []
  /** Acknowledged keys in acknowledgement order. */
  readonly ackedKeys: string[] = []
  private stopping = false
  private loops: Promise<void>[] = []
  private deadline = 0

  constructor (private readonly opts: LoadOptions) {}

  start (): void {
    this.deadline = Date.now() + this.opts.maxDurationMs
    const writers = this.opts.writers ?? 20
    const interval = writers * 1000 / (this.opts.writeRate ?? 250)
    for (let i = 0; i < writers; i++) this.loops.push(this.loop(interval, n => this.write(`${this.opts.keyPrefix}:w${i}:${n}`)))
    const readInterval = 1000 / (this.opts.readRate ?? 25)
    for (let i = 0; i < (this.opts.readers ?? 4); i++) this.loops.push(this.loop(readInterval, n => this.read(n % 2 === 1)))
  }

  /** Ends every loop (in-flight requests finish and are recorded). */
  async stop (): Promise<void> {
    this.stopping = true
    await Promise.all(this.loops)
  }

  private async loop (intervalMs: number, step: (n: number) => Promise<void>): Promise<void> {
    // Spread the loops' first requests over one interval.
    await sleep(Math.random() * intervalMs)
    for (let n = 0; n < MAX_OPS_PER_LOOP && !this.stopping && Date.now() < this.deadline; n++) {
      const started = Date.now()
      await step(n)
      const wait = started + intervalMs - Date.now()
      if (wait > 0) await sleep(wait)
    }
  }

  private async request (method: 'PUT' | 'GET', path: string, body?: string): Promise<{ status: number; text: string; servedBy: string | null; cache?: string | null; code?: string }> {
    try {
      const res = await fetch(this.opts.url + path, {
        method,
        headers: { authorization: `Bearer ${this.opts.token}`, ...(body === undefined ? {} : { 'content-type': 'application/octet-stream' }) },
        ...(body === undefined ? {} : { body }),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)
      })
      const text = await res.text()
      let code: string | undefined
      if (res.status >= 400) {
        try { code = (JSON.parse(text) as { error?: { code?: string } }).error?.code } catch { /* not JSON */ }
      }
      return { status: res.status, text, servedBy: res.headers.get('x-served-by'), cache: res.headers.get('x-cache'), ...(code === undefined ? {} : { code }) }
    } catch (err) {
      return { status: 0, text: '', servedBy: null, code: err instanceof Error ? err.name : 'Error' }
    }
  }

  private async write (key: string): Promise<void> {
    const start = Date.now()
    const r = await this.request('PUT', `/kv/${encodeURIComponent(key)}`, key)
    const rec: WriteRec = { key, start, end: Date.now(), status: r.status, ...(r.code === undefined ? {} : { code: r.code }) }
    this.writes.push(rec)
    if (acked(rec)) this.ackedKeys.push(key)
  }

  private async read (strong: boolean): Promise<void> {
    const n = this.ackedKeys.length
    if (n === 0) return
    const key = this.ackedKeys[n - 1 - Math.floor(Math.random() * Math.min(n, READ_WINDOW))] as string
    const start = Date.now()
    const r = await this.request('GET', `/kv/${encodeURIComponent(key)}${strong ? '?consistency=strong' : ''}`)
    this.reads.push({
      key, start, end: Date.now(), status: r.status, strong, wrongValue: r.status === 200 && r.text !== key,
      servedBy: r.servedBy, cache: r.cache ?? null, ...(r.code === undefined ? {} : { code: r.code })
    })
  }

  /** Longest stretch in [from, to] without an acknowledged write completing. */
  longestAckGap (from: number, to: number): number {
    const ends = this.writes.filter(w => acked(w) && w.end >= from && w.end <= to).map(w => w.end).sort((a, b) => a - b)
    let prev = from
    let gap = 0
    for (const e of [...ends, to]) { gap = Math.max(gap, e - prev); prev = e }
    return gap
  }

  /** ms from `at` until the first acknowledgement completing after it (null: none). */
  firstAckAfter (at: number): number | null {
    const ends = this.writes.filter(w => acked(w) && w.end >= at).map(w => w.end - at)
    return ends.length === 0 ? null : Math.min(...ends)
  }
}
