// Low-level plumbing for the Redis Sentinel topology launcher (test/helpers/topology.ts):
// binaries, free ports, child processes, short-lived probe clients and bounded waits.
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, closeSync, constants as fsConstants, openSync, readFileSync, rmSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import path from 'node:path'
import type { ConnectionOptions } from 'node:tls'
import { Redis } from 'ioredis'

export const HOST = '127.0.0.1'

export interface NodeProc { role: 'redis' | 'sentinel'; host: string; port: number; pid: number; dir: string; alive: boolean }

export const MISSING_BINARIES_MESSAGE =
  "redis-server/redis-sentinel not found on PATH: install them with 'apt-get install -y redis-server redis-sentinel' (Debian/Ubuntu) or 'brew install redis' (macOS)"

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue
    const file = path.join(dir, name)
    try {
      accessSync(file, fsConstants.X_OK)
      return file
    } catch {
      // not here
    }
  }
  return undefined
}

export interface Binaries {
  redis: { cmd: string; args: string[] }
  sentinel: { cmd: string; args: string[] }
}

/** Resolves redis-server and redis-sentinel (falls back to `redis-server <conf> --sentinel`). */
export function resolveBinaries(): Binaries {
  const server = findOnPath('redis-server')
  if (!server) throw new Error(MISSING_BINARIES_MESSAGE)
  const sentinel = findOnPath('redis-sentinel')
  return {
    redis: { cmd: server, args: [] },
    sentinel: sentinel ? { cmd: sentinel, args: [] } : { cmd: server, args: ['--sentinel'] },
  }
}

/** Asks the OS for n distinct free loopback ports (all listened on at once, then closed). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () =>
      new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
        const s = createServer()
        s.once('error', reject)
        s.listen(0, HOST, () => resolve(s))
      }),
    ),
  )
  const ports = servers.map((s) => {
    const a = s.address()
    if (!a || typeof a === 'string') throw new Error('could not read a free port from the OS')
    return a.port
  })
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
  return ports
}

// ---- child processes -------------------------------------------------------------------------

/** Every child pid we started and that has not exited yet (all topologies of this process). */
const livePids = new Set<number>()
/** Temp dirs of topologies not stopped yet (removed by the exit handler as a last resort). */
export const liveDirs = new Set<string>()
let exitHookInstalled = false

function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    for (const pid of livePids) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true })
  })
}

export interface Spawned {
  child: ChildProcess
  pid: number
  exited: Promise<void>
  hasExited(): boolean
}

/** Spawns a redis-server / redis-sentinel (no pipes: stdin ignored, stdout/stderr appended to outFile, which
 *  only ever holds what redis prints before its logfile is open, e.g. a FATAL CONFIG FILE ERROR).
 *  Its pid is tracked for the exit hook. */
export function spawnNode(cmd: string, args: string[], outFile: string, onExit: () => void): Spawned {
  installExitHook()
  const fd = openSync(outFile, 'a')
  let child: ChildProcess
  try {
    child = spawn(cmd, args, { stdio: ['ignore', fd, fd], detached: false })
  } finally {
    closeSync(fd)
  }
  const pid = child.pid
  if (pid === undefined) throw new Error(`failed to spawn ${cmd} ${args.join(' ')}`)
  livePids.add(pid)
  let done = false
  const exited = new Promise<void>((resolve) => {
    const finish = (): void => {
      if (done) return
      done = true
      livePids.delete(pid)
      onExit()
      resolve()
    }
    child.once('exit', finish)
    child.once('error', finish)
  })
  return { child, pid, exited, hasExited: () => done }
}

/** Waits (bounded) for a spawned child to be gone (reaped). */
export async function waitExit(s: Spawned, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms)
  })
  const r = await Promise.race([s.exited.then(() => 'ok' as const), timeout])
  clearTimeout(timer)
  if (r === 'timeout') throw new Error(`timed out after ${ms} ms waiting for ${what} (pid ${s.pid}) to exit`)
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig)
  } catch {
    // already gone
  }
}

export function logTail(files: string[], lines = 8): string {
  const out: string[] = []
  for (const file of files) {
    try {
      out.push(...readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines))
    } catch {
      // no such file yet
    }
  }
  return out.filter((l) => l.trim()).join('\n') || '(empty log)'
}

// ---- probes ----------------------------------------------------------------------------------

/** `tls`: connect over TLS with these options (e.g. { ca }); default plain TCP. */
export function newClient(port: number, password: string | undefined, probe: boolean, tls?: ConnectionOptions): Redis {
  const c = new Redis({
    host: HOST,
    port,
    ...(password !== undefined ? { password } : {}),
    ...(tls !== undefined ? { tls } : {}),
    maxRetriesPerRequest: 1,
    connectTimeout: 1000,
    ...(probe ? { retryStrategy: () => null, commandTimeout: 1500, enableReadyCheck: false } : {}),
  })
  if (probe) c.on('error', () => {})
  return c
}

/** Runs fn with a short-lived probe client, always disconnected afterwards. */
export async function probe<T>(
  port: number, password: string | undefined, fn: (c: Redis) => Promise<T>, tls?: ConnectionOptions,
): Promise<T> {
  const c = newClient(port, password, true, tls)
  try {
    return await fn(c)
  } finally {
    c.disconnect()
  }
}

/** Thrown from a waitUntil check to stop waiting at once (e.g. the process died). */
export class FatalWaitError extends Error {}

/** Polls check() (bounded): it returns true when done, or a string saying what is still missing. */
export async function waitUntil(
  what: string,
  timeoutMs: number,
  check: () => Promise<true | string>,
  intervalMs = 100,
): Promise<void> {
  const start = Date.now()
  let last = 'not checked yet'
  for (;;) {
    try {
      const r = await check()
      if (r === true) return
      last = r
    } catch (err) {
      if (err instanceof FatalWaitError) throw err
      last = err instanceof Error ? err.message : String(err)
    }
    if (Date.now() - start >= timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${last}`)
    }
    await sleep(intervalMs)
  }
}

export type RoleInfo =
  | { role: 'master'; replicas: { host: string; port: number }[] }
  | { role: 'slave'; host: string; port: number; state: string }
  | { role: 'sentinel' }

export function parseRole(reply: unknown): RoleInfo {
  if (!Array.isArray(reply)) throw new Error(`unexpected ROLE reply ${JSON.stringify(reply)}`)
  const kind = String(reply[0])
  if (kind === 'master') {
    const list = Array.isArray(reply[2]) ? (reply[2] as unknown[][]) : []
    return { role: 'master', replicas: list.map((r) => ({ host: String(r[0]), port: Number(r[1]) })) }
  }
  if (kind === 'slave') {
    return { role: 'slave', host: String(reply[1]), port: Number(reply[2]), state: String(reply[3]) }
  }
  return { role: 'sentinel' }
}

/** Turns a flat [k1, v1, k2, v2, ...] reply (SENTINEL MASTER / REPLICAS entries) into a record. */
export function kv(reply: unknown): Record<string, string> {
  const out: Record<string, string> = {}
  if (!Array.isArray(reply)) return out
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1])
  return out
}

export const BAD_FLAGS = ['s_down', 'o_down', 'disconnected']
export function hasBadFlag(flags: string | undefined): string | undefined {
  const list = (flags ?? '').split(',')
  return BAD_FLAGS.find((f) => list.includes(f))
}

// ---- the processes of one topology -----------------------------------------------------------

interface Managed { proc: NodeProc; conf: string; logfile: string; outfile: string; spawned?: Spawned; paused: boolean }

/** Owns the processes and the temp dir of one topology. */
export class NodeSet {
  private readonly nodes = new Map<NodeProc, Managed>()
  private stopping: Promise<void> | undefined

  constructor(
    readonly root: string,
    private readonly bins: Binaries,
    private readonly pw: (port: number) => string | undefined,
    private readonly log: (line: string) => void,
    /** TLS options for probing a node on `port` (undefined: plain TCP). */
    private readonly tlsOf: (port: number) => ConnectionOptions | undefined = () => undefined,
  ) {
    liveDirs.add(root)
  }

  /** Registers a node (synchronously, so callers keep their order); launch() starts it. */
  create(role: NodeProc['role'], port: number): NodeProc {
    const dir = path.join(this.root, `${role}-${port}`)
    const proc: NodeProc = { role, host: HOST, port, pid: 0, dir, alive: false }
    const file = (ext: string): string => path.join(dir, `${role}.${ext}`)
    this.nodes.set(proc, { proc, conf: file('conf'), logfile: file('log'), outfile: file('out'), paused: false })
    return proc
  }

  /** Writes the node's config file (base lines + given lines) and spawns it. */
  async launch(proc: NodeProc, lines: string[]): Promise<void> {
    const m = this.get(proc)
    const base = [`bind ${HOST}`, `port ${proc.port}`, `dir ${proc.dir}`, `logfile ${m.logfile}`, 'protected-mode no', 'daemonize no']
    await mkdir(proc.dir, { recursive: true })
    await writeFile(m.conf, [...base, ...lines, ''].join('\n'))
    this.spawn(proc)
  }

  private get(proc: NodeProc): Managed {
    const m = this.nodes.get(proc)
    if (!m) throw new Error(`unknown node ${proc.role} :${proc.port}`)
    return m
  }

  private spawn(proc: NodeProc): void {
    const m = this.get(proc)
    const bin = proc.role === 'redis' ? this.bins.redis : this.bins.sentinel
    m.paused = false
    const spawned = spawnNode(bin.cmd, [m.conf, ...bin.args], m.outfile, () => {
      if (m.spawned === spawned) proc.alive = false
    })
    m.spawned = spawned
    proc.pid = spawned.pid
    proc.alive = true
    this.log(`started ${proc.role} ${HOST}:${proc.port} pid ${proc.pid}`)
  }

  /** Waits until the node answers PING; fails at once if its process exits. */
  async waitPing(proc: NodeProc, timeoutMs = 10_000): Promise<void> {
    const m = this.get(proc)
    await waitUntil(`${proc.role} ${HOST}:${proc.port} to answer PING`, timeoutMs, async () => {
      if (m.spawned?.hasExited()) {
        throw new FatalWaitError(`${proc.role} ${HOST}:${proc.port} (pid ${proc.pid}) exited during startup; log tail:\n${logTail([m.outfile, m.logfile])}`)
      }
      return (await probe(proc.port, this.pw(proc.port), (c) => c.ping(), this.tlsOf(proc.port))) === 'PONG' ? true : 'no PONG'
    }, 50)
  }

  async kill(proc: NodeProc, sig: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const m = this.get(proc)
    if (!m.spawned || m.spawned.hasExited()) {
      proc.alive = false
      return
    }
    signal(proc.pid, sig)
    if (sig !== 'SIGKILL' && sig !== 'SIGTERM') {
      if (sig === 'SIGSTOP' || sig === 'SIGCONT') m.paused = sig === 'SIGSTOP'
      this.log(`sent ${sig} to ${proc.role} :${proc.port} pid ${proc.pid}`)
      return
    }
    if (sig === 'SIGTERM') signal(proc.pid, 'SIGCONT') // a stopped process would never handle it
    await waitExit(m.spawned, 10_000, `${proc.role} :${proc.port}`)
    proc.alive = false
    this.log(`killed (${sig}) ${proc.role} :${proc.port} pid ${proc.pid}`)
  }

  /** Alive and not SIGSTOPped by kill(). */
  isLive(proc: NodeProc): boolean {
    return proc.alive && !this.get(proc).paused
  }

  /** Starts a dead node again with the same config file and waits for PING. */
  async restart(proc: NodeProc): Promise<void> {
    const m = this.get(proc)
    if (m.spawned && !m.spawned.hasExited()) {
      throw new Error(`${proc.role} :${proc.port} (pid ${proc.pid}) is still running; kill() it first`)
    }
    if (this.stopping) throw new Error('topology is stopped')
    this.spawn(proc)
    await this.waitPing(proc)
  }

  /** SIGCONT + SIGTERM, SIGKILL after 500 ms, then removes the temp dir. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop()
    return this.stopping
  }

  private async doStop(): Promise<void> {
    const running = [...this.nodes.values()].filter((m) => m.spawned && !m.spawned.hasExited())
    for (const m of running) {
      signal(m.proc.pid, 'SIGCONT')
      signal(m.proc.pid, 'SIGTERM')
    }
    await Promise.all(running.map(async (m) => {
      const s = m.spawned as Spawned
      await waitExit(s, 500, 'graceful stop').catch(async () => {
        signal(s.pid, 'SIGKILL')
        await waitExit(s, 5000, `${m.proc.role} :${m.proc.port}`).catch(() => {})
      })
      m.proc.alive = false
    }))
    await rm(this.root, { recursive: true, force: true })
    liveDirs.delete(this.root)
    this.log(`stopped topology in ${this.root}`)
  }
}

// ---- a filtering TCP forwarder (NAT simulation) ------------------------------------------------

export interface Forwarder { listen: { host: string; port: number }; close(): Promise<void> }

/**
 * Listens on listenHost:port and forwards to HOST:targetPort, but only for connections coming from
 * `allowFrom` (a loopback source address the redis processes bind with `bind-source-addr`); any
 * other client is reset at once. It makes an announced address reachable for the redis nodes and
 * sentinels while a client connecting from 127.0.0.1 cannot use it.
 */
export async function startForwarder(listenHost: string, port: number, targetPort: number, allowFrom: string): Promise<Forwarder> {
  const sockets = new Set<Socket>()
  const track = (s: Socket): void => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
  }
  const server: Server = createServer((client) => {
    track(client)
    if (client.remoteAddress !== allowFrom) {
      client.resetAndDestroy()
      return
    }
    const upstream = createConnection({ host: HOST, port: targetPort })
    track(upstream)
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, listenHost, () => resolve())
  })
  return {
    listen: { host: listenHost, port },
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    }),
  }
}
