/**
 * Plumbing for `npm run bench` (scripts/bench.ts): child processes we start (and only those, plus
 * the cluster workers they fork, tracked by pid and start time), wrk runs with a Lua `done` that
 * prints JSON, /proc sampling (VmRSS and CPU time per process of a process tree), Redis INFO.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants as fsConstants, readdirSync, readFileSync } from 'node:fs'
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
  /** Child processes of this one seen so far (cluster workers): pid -> start time (jiffies since boot),
   *  so that a pid reused by an unrelated process is never signalled. Filled by `processTree`. */
  descendants: Map<number, number>
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
  const exited = new Promise<number | null>(resolve => proc.on('exit', code => {
    started.delete(child)
    // A cluster primary that died without stopping its workers (killed): stop the leftovers by pid.
    killDescendantsSync(child)
    resolve(code)
  }))
  if (proc.pid === undefined) throw new Error(`could not start ${name} (${cmd})`)
  const child: Child = { name, proc, pid: proc.pid, output: () => out, lines: () => lines, exited, descendants: new Map() }
  started.add(child)
  return child
}

/** SIGTERM (a cluster primary forwards it to its workers), then SIGKILL after `graceMs`; resolves when
 *  the process is gone. Workers of `c` seen by `processTree` and still alive then are SIGKILLed by pid. */
export async function stopChild (c: Child, graceMs = 5000): Promise<void> {
  if (started.has(c)) {
    c.proc.kill('SIGTERM')
    const timer = setTimeout(() => c.proc.kill('SIGKILL'), graceMs)
    await c.exited
    clearTimeout(timer)
  }
  killDescendantsSync(c)
}

/** SIGKILL, by pid, every recorded descendant of `c` that is still the same process (same start time). */
function killDescendantsSync (c: Child): void {
  for (const [pid, startedAt] of c.descendants) {
    if (startTicks(pid) === startedAt) { try { process.kill(pid, 'SIGKILL') } catch { /* gone */ } }
    c.descendants.delete(pid)
  }
}

/** Last-resort synchronous cleanup (process exit): SIGKILL every child still running and every worker
 *  process recorded for them (also those of a primary that already died), by pid. */
export function killAllStartedSync (): void {
  for (const c of started) {
    try { process.kill(c.pid, 'SIGKILL') } catch { /* gone */ }
    killDescendantsSync(c)
  }
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

/** Start time of a process in clock ticks since boot (/proc/<pid>/stat field 22), or undefined. */
function startTicks (pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const v = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19])
    return Number.isFinite(v) ? v : undefined
  } catch { return undefined }
}

/** Direct children of `pid` (of all its threads), from /proc/<pid>/task/<tid>/children. */
export function childPids (pid: number): number[] {
  const out = new Set<number>()
  let tasks: string[] = []
  try { tasks = readdirSync(`/proc/${pid}/task`) } catch { return [] }
  for (const tid of tasks) {
    try {
      for (const p of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/)) if (p !== '') out.add(Number(p))
    } catch { /* thread gone */ }
  }
  return [...out]
}

/** `c`'s pid and its current direct children (cluster workers); records the children in c.descendants
 *  (so cleanup can stop them by pid even after the primary is gone). */
export function processTree (c: Child): number[] {
  const kids = childPids(c.pid)
  for (const pid of kids) {
    if (c.descendants.has(pid)) continue
    const t = startTicks(pid)
    if (t !== undefined) c.descendants.set(pid, t)
  }
  return [c.pid, ...kids]
}

/** CPU seconds of every process in `pids` (see cpuSeconds), by pid. */
export function cpuSecondsOf (pids: number[]): Map<number, number> {
  return new Map(pids.map(pid => [pid, cpuSeconds(pid)]))
}

/** CPU seconds used between two cpuSecondsOf snapshots, summed over the processes (a process that
 *  appeared in between counts from 0; one that vanished in between is not counted). */
export function cpuDelta (before: Map<number, number>, after: Map<number, number>): number {
  let s = 0
  for (const [pid, t] of after) s += Math.max(0, t - (before.get(pid) ?? 0))
  return s
}

/**
 * Samples VmRSS of every process `pids()` returns, every `everyMs`, until stopped. `peakKb`: the
 * highest VmRSS of any single process (per process, not summed); `processes`: the most processes
 * seen at once.
 */
export function rssSampler (pids: () => number[], everyMs = 100): { stop: () => { peakKb: number; processes: number } } {
  let peak = 0
  let processes = 0
  const sample = (): void => {
    const ps = pids()
    let n = 0
    for (const pid of ps) {
      const kb = rssKb(pid)
      if (kb === undefined) continue
      n++
      peak = Math.max(peak, kb)
    }
    processes = Math.max(processes, n)
  }
  sample()
  const timer = setInterval(sample, everyMs)
  return { stop: () => { clearInterval(timer); sample(); return { peakKb: peak, processes } } }
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

/**
 * The Lua script for one operation: method, 100-byte body for PUT, JSON summary from `done`. With
 * `randomKeys`, every request goes to `<prefix><n>` for a uniformly random n in 0..count-1 (the URL
 * given to wrk then only names the host).
 */
export async function writeWrkScript (file: string, method: 'GET' | 'PUT', valueBytes: number, randomKeys?: { pathPrefix: string; count: number }): Promise<void> {
  const lua = [
    `wrk.method = "${method}"`,
    ...(method === 'PUT'
      ? [`wrk.body = string.rep("v", ${valueBytes})`, 'wrk.headers["Content-Type"] = "application/octet-stream"']
      : []),
    ...(randomKeys === undefined
      ? []
      : [
          'math.randomseed(os.time())',
          `local prefix = ${JSON.stringify(randomKeys.pathPrefix)}`,
          `request = function() return wrk.format(nil, prefix .. math.random(0, ${randomKeys.count - 1})) end`
        ]),
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
