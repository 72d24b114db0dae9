/**
 * Plumbing for `npm run bench` (scripts/bench.ts): child processes we start (and only those),
 * wrk runs with a Lua `done` that prints JSON, /proc sampling (VmRSS, CPU time), Redis INFO.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import type { Redis } from 'ioredis'

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
export const say = (line: string): void => { process.stdout.write(`${line}\n`) }

export function onPath (name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue
    try {
      accessSync(path.join(dir, name), fsConstants.X_OK)
      return path.join(dir, name)
    } catch { /* not here */ }
  }
  return undefined
}

// ---- child processes -----------------------------------------------------------------------

export interface Child {
  name: string
  proc: ChildProcess
  pid: number
  /** The last 20 000 characters of stdout+stderr, and how many lines were written in all. */
  output: () => string
  lines: () => number
  exited: Promise<number | null>
}

/** Every child this script started and that has not exited (stopped by pid on the way out). */
const started = new Set<Child>()

export function startChild (name: string, cmd: string, args: string[], env: Record<string, string>): Child {
  const proc = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let lines = 0
  const keep = (d: Buffer): void => {
    const text = d.toString()
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) lines++
    out = (out + text).slice(-20_000)
  }
  proc.stdout?.on('data', keep)
  proc.stderr?.on('data', keep)
  const exited = new Promise<number | null>(resolve => proc.on('exit', code => { started.delete(child); resolve(code) }))
  if (proc.pid === undefined) throw new Error(`could not start ${name} (${cmd})`)
  const child: Child = { name, proc, pid: proc.pid, output: () => out, lines: () => lines, exited }
  started.add(child)
  return child
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stopChild (c: Child, graceMs = 5000): Promise<void> {
  if (!started.has(c)) return
  c.proc.kill('SIGTERM')
  const timer = setTimeout(() => c.proc.kill('SIGKILL'), graceMs)
  await c.exited
  clearTimeout(timer)
}

/** Last-resort synchronous cleanup (process exit): SIGKILL every child still running, by pid. */
export function killAllStartedSync (): void {
  for (const c of started) { try { process.kill(c.pid, 'SIGKILL') } catch { /* gone */ } }
}

/** Waits until `check` answers true, the child exits, or the deadline passes (then throws). */
export async function waitReady (c: Child, what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    if (await check().catch(() => false)) return
    if (c.proc.exitCode !== null || c.proc.signalCode !== null) throw new Error(`${what} exited (${c.proc.exitCode ?? c.proc.signalCode}): ${c.output().slice(-1500)}`)
    if (Date.now() > deadline) throw new Error(`${what} not ready within ${ms} ms: ${c.output().slice(-1500)}`)
    await sleep(100)
  }
}

// ---- /proc sampling --------------------------------------------------------------------------

export function rssKb (pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m?.[1] === undefined ? undefined : Number(m[1])
  } catch { return undefined }
}

/** User+system CPU seconds of a process (all its threads). */
export function cpuSeconds (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch { return 0 }
}

/** Samples VmRSS of `pid` every `everyMs` until stopped; returns the peak in kB. */
export function rssSampler (pid: number, everyMs = 100): { stop: () => number } {
  let peak = rssKb(pid) ?? 0
  const timer = setInterval(() => { peak = Math.max(peak, rssKb(pid) ?? 0) }, everyMs)
  return { stop: () => { clearInterval(timer); peak = Math.max(peak, rssKb(pid) ?? 0); return peak } }
}

// ---- wrk -------------------------------------------------------------------------------------

export interface WrkResult {
  requests: number
  durationS: number
  rps: number
  p50Ms: number
  p90Ms: number
  p99Ms: number
  maxMs: number
  non2xx: number
  socketErrors: number
  errors: number
}

/** The Lua script for one operation: method, 100-byte body for PUT, JSON summary from `done`. */
export async function writeWrkScript (file: string, method: 'GET' | 'PUT', valueBytes: number): Promise<void> {
  const lua = [
    `wrk.method = "${method}"`,
    ...(method === 'PUT'
      ? [`wrk.body = string.rep("v", ${valueBytes})`, 'wrk.headers["Content-Type"] = "application/octet-stream"']
      : []),
    'done = function(summary, latency, requests)',
    '  local e = summary.errors',
    '  local p = function(q) return latency:percentile(q) end',
    '  io.write(string.format(\'BENCHJSON {"requests":%.0f,"duration_us":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f,"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,"max_us":%.0f}\\n\',',
    '    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, p(50), p(90), p(99), latency.max))',
    'end',
    ''
  ].join('\n')
  await writeFile(file, lua)
}

/** One bounded wrk run (1 thread, `connections`, `seconds`); killed if it overruns by 15 s. */
export async function runWrk (url: string, script: string, seconds: number, connections: number): Promise<WrkResult> {
  const c = startChild('wrk', 'wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '2s', '-s', script, url], { PATH: process.env.PATH ?? '' })
  const guard = setTimeout(() => c.proc.kill('SIGKILL'), (seconds + 15) * 1000)
  const code = await c.exited
  clearTimeout(guard)
  const line = c.output().split('\n').find(l => l.startsWith('BENCHJSON '))
  if (code !== 0 || line === undefined) throw new Error(`wrk ${url} failed (exit ${code}): ${c.output().slice(-800)}`)
  const j = JSON.parse(line.slice('BENCHJSON '.length)) as Record<string, number>
  const n = (k: string): number => j[k] ?? 0
  const durationS = n('duration_us') / 1e6
  const socketErrors = n('connect') + n('read') + n('write') + n('timeout')
  return {
    requests: n('requests'),
    durationS,
    rps: durationS > 0 ? n('requests') / durationS : 0,
    p50Ms: n('p50_us') / 1000,
    p90Ms: n('p90_us') / 1000,
    p99Ms: n('p99_us') / 1000,
    maxMs: n('max_us') / 1000,
    non2xx: n('status'),
    socketErrors,
    errors: n('status') + socketErrors
  }
}

// ---- Redis -----------------------------------------------------------------------------------

/** `cmdstat_get` calls from INFO commandstats (0 when GET was never called). */
export async function getCalls (client: Redis): Promise<number> {
  const info = await client.info('commandstats')
  const m = /cmdstat_get:calls=(\d+)/.exec(info)
  return m?.[1] === undefined ? 0 : Number(m[1])
}

export async function redisVersion (client: Redis): Promise<string> {
  const m = /redis_version:(\S+)/.exec(await client.info('server'))
  return m?.[1] ?? 'unknown'
}

export function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid] ?? 0 : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2
}

/** Machine-wide busy and total jiffies from /proc/stat (to see whether the 2 cores were saturated). */
export function machineJiffies (): { busy: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? ''
    const v = line.trim().split(/\s+/).slice(1).map(Number)
    const total = v.reduce((s, x) => s + x, 0)
    const idle = (v[3] ?? 0) + (v[4] ?? 0)
    return { busy: total - idle, total }
  } catch { return { busy: 0, total: 0 } }
}

/** Milliseconds since process `pid` started (from /proc), or undefined. */
export function processAgeMs (pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const startTicks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19])
    const uptimeS = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0])
    const age = (uptimeS - startTicks / 100) * 1000
    return Number.isFinite(age) && age >= 0 ? age : undefined
  } catch { return undefined }
}
