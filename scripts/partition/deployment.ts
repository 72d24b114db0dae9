/**
 * One deployment inside a Lab: redis-server M R1 R2, redis-sentinel S1-S3 and the gateway
 * (`node dist/src/server.js`), each started with `ip netns exec <its namespace>` so its traffic goes
 * over its own veth and can be cut. Every pid is tracked; stop() ends them by pid and removes the
 * temp dir. Probes run from the root namespace through the bridge (never cut).
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, openSync, rmSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { aclSetup } from './acl.js'
import { ownId, PREFIX, REDIS_NODES, SENTINEL_NODES, type Lab, type NodeName } from './netns.js'
import { pidAlive, sleep } from './shell.js'
import { FatalWaitError, waitUntil } from '../../test/helpers/topology-procs.js'

export const MASTER_NAME = 'mymaster'
export const REDIS_PORT = 6379
export const SENTINEL_PORT = 26379
export const GATEWAY_PORT = 3000

export interface DeploymentOptions {
  /** WRITE_DURABILITY of the gateway. Default: the gateway's default. */
  durability?: string
  /** Sentinel down-after-milliseconds. Default 1500. */
  downAfterMs?: number
  /** Sentinel failover-timeout. Default 5000. */
  failoverTimeoutMs?: number
  log: (line: string) => void
}

/** Every pid any deployment of this process started and that may still run (for the exit hook). */
export const livePids = new Set<number>()
/** Temp dirs not removed yet (for the exit hook). */
export const liveDirs = new Set<string>()

/** dist/src/server.js, whether this file runs from scripts/ (tap) or dist/scripts/. */
function serverPath (): string {
  const root = new URL('../../', import.meta.url)
  const base = root.href.endsWith('/dist/') ? new URL('../', root) : root
  return fileURLToPath(new URL('dist/src/server.js', base))
}

interface Proc { node: NodeName; pid: number; dir: string; exited: Promise<void>; done: boolean }

export class Deployment {
  private readonly procs = new Map<NodeName, Proc>()
  private stopped = false
  /** Bearer token (rights rwo) the load generator and the checker use. */
  readonly token = randomBytes(12).toString('hex')

  private constructor (readonly lab: Lab, readonly dir: string, readonly opts: DeploymentOptions) {}

  static async start (lab: Lab, opts: DeploymentOptions): Promise<Deployment> {
    const dir = await mkdtemp(path.join(os.tmpdir(), `${PREFIX}-${ownId()}-`))
    liveDirs.add(dir)
    const d = new Deployment(lab, dir, opts)
    try {
      await d.boot()
    } catch (err) {
      await d.stop()
      throw err
    }
    return d
  }

  get gatewayUrl (): string { return `http://${this.lab.ip('g')}:${GATEWAY_PORT}` }
  /** The node name of a redis address as the sentinels report it. */
  nodeOf (host: string): NodeName | undefined { return REDIS_NODES.find(n => this.lab.ip(n) === host) }
  /** Path of a node's log file (inside the temp dir). */
  logFile (node: NodeName): string { return path.join(this.dir, node, 'out.log') }

  private async boot (): Promise<void> {
    const started = Date.now()
    const acl = aclSetup()
    const m = this.lab.ip('m')
    await Promise.all(REDIS_NODES.map(n => this.launch(n, 'redis-server', [
      `bind ${this.lab.ip(n)} 127.0.0.1`, `port ${REDIS_PORT}`, 'protected-mode no', 'save ""', 'appendonly no',
      'repl-diskless-sync yes', 'repl-diskless-sync-delay 0', ...acl.redisConf,
      // The README's recommended replication settings: a silent link is dropped and dialled again after 5 s.
      'repl-timeout 5', 'repl-ping-replica-period 1',
      // R2 is the less preferred replica, so a failover away from M goes to R1 (scenario f names it).
      ...(n === 'm' ? [] : [`replicaof ${m} ${REDIS_PORT}`]), ...(n === 'r2' ? ['replica-priority 200'] : []),
      // Extra redis.conf lines to measure settings (later lines win, e.g. 'repl-timeout 60;repl-ping-replica-period 10' for Redis's defaults).
      ...(process.env.PARTITION_REDIS_CONF ?? '').split(';').map(l => l.trim()).filter(l => l !== '')
    ])))
    await waitUntil('replicas to be connected to M', 20_000, async () => {
      for (const n of REDIS_NODES.slice(1)) {
        const role = await this.call(n, ['ROLE']) as unknown[]
        if (role[0] !== 'slave' || role[3] !== 'connected') return `${n}: ROLE ${String(role[0])} ${String(role[3])}`
      }
      return true
    })
    await Promise.all(SENTINEL_NODES.map(n => this.launch(n, 'redis-sentinel', [
      `bind ${this.lab.ip(n)} 127.0.0.1`, `port ${SENTINEL_PORT}`, 'protected-mode no', 'sentinel resolve-hostnames no',
      `sentinel monitor ${MASTER_NAME} ${m} ${REDIS_PORT} 2`,
      `sentinel down-after-milliseconds ${MASTER_NAME} ${this.opts.downAfterMs ?? 1500}`,
      `sentinel failover-timeout ${MASTER_NAME} ${this.opts.failoverTimeoutMs ?? 5000}`,
      `sentinel parallel-syncs ${MASTER_NAME} 1`
    ])))
    await waitUntil('sentinels to know M, both replicas and each other', 30_000, async () => {
      for (const s of SENTINEL_NODES) {
        const [reps, others] = await Promise.all([
          this.call(s, ['SENTINEL', 'REPLICAS', MASTER_NAME]), this.call(s, ['SENTINEL', 'SENTINELS', MASTER_NAME])
        ]) as [unknown[], unknown[]]
        if (reps.length !== 2 || others.length !== 2) return `${s} knows ${reps.length}/2 replicas, ${others.length}/2 sentinels`
      }
      return true
    })
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '',
      REDIS_SENTINELS: SENTINEL_NODES.map(s => `${this.lab.ip(s)}:${SENTINEL_PORT}`).join(','),
      REDIS_MASTER_NAME: MASTER_NAME,
      HOST: '0.0.0.0',
      PORT: String(GATEWAY_PORT),
      LOG_LEVEL: 'warn',
      AUTH_TOKENS: `${this.token}:rwo`,
      ...acl.gatewayEnv,
      ...(this.opts.durability === undefined ? {} : { WRITE_DURABILITY: this.opts.durability })
    }
    await this.spawnIn('g', process.execPath, [serverPath()], env)
    await waitUntil('the gateway to answer /readyz 200', 20_000, async () => {
      const g = this.procs.get('g')
      if (g?.done === true) throw new FatalWaitError(`gateway exited during startup (log: ${this.logFile('g')})`)
      const r = await fetch(`${this.gatewayUrl}/readyz`, { signal: AbortSignal.timeout(1000) })
      return r.status === 200 ? true : `/readyz ${r.status}`
    })
    this.opts.log(`deployment up in ${Date.now() - started} ms (gateway ${this.gatewayUrl}, ACL users ${acl.gatewayEnv.REDIS_USERNAME}/${acl.gatewayEnv.REDIS_CONTROL_USERNAME})`)
  }

  private async launch (node: NodeName, bin: string, lines: string[]): Promise<void> {
    const dir = path.join(this.dir, node)
    await mkdir(dir, { recursive: true })
    const conf = path.join(dir, 'node.conf')
    await writeFile(conf, [`dir ${dir}`, `logfile ${path.join(dir, 'out.log')}`, 'daemonize no', ...lines, ''].join('\n'))
    await this.spawnIn(node, bin, [conf], { PATH: process.env.PATH ?? '' })
  }

  /** `ip netns exec` execs the command in place: the pid we get is the node's own. */
  private async spawnIn (node: NodeName, cmd: string, args: string[], env: Record<string, string>): Promise<void> {
    const dir = path.join(this.dir, node)
    await mkdir(dir, { recursive: true })
    const fd = openSync(path.join(dir, node === 'g' ? 'out.log' : 'stdout.log'), 'a')
    const child = spawn('ip', ['netns', 'exec', this.lab.ns(node), cmd, ...args], { stdio: ['ignore', fd, fd], env })
    closeSync(fd)
    const pid = child.pid
    if (pid === undefined) throw new Error(`could not start ${cmd} in ${this.lab.ns(node)}`)
    livePids.add(pid)
    const proc: Proc = { node, pid, dir, done: false, exited: Promise.resolve() }
    proc.exited = new Promise(resolve => {
      const finish = (): void => { proc.done = true; livePids.delete(pid); resolve() }
      child.once('exit', finish)
      child.once('error', finish)
    })
    this.procs.set(node, proc)
  }

  /** A short-lived probe client of a node (redis or sentinel) from the root namespace (default user). */
  client (node: NodeName): Redis {
    const isSentinel = SENTINEL_NODES.includes(node)
    const c = new Redis({
      host: this.lab.ip(node),
      port: isSentinel ? SENTINEL_PORT : REDIS_PORT,
      connectTimeout: 1000,
      commandTimeout: 3000,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      enableReadyCheck: false,
      lazyConnect: false
    })
    c.on('error', () => {})
    return c
  }

  /** One command on a node through a fresh probe client. */
  async call (node: NodeName, args: string[]): Promise<unknown> {
    const c = this.client(node)
    try {
      return await c.call(args[0] ?? 'PING', ...args.slice(1))
    } finally {
      c.disconnect()
    }
  }

  /** Ends every process (SIGTERM, SIGKILL after 2 s) by pid and removes the temp dir. Idempotent. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    const running = [...this.procs.values()].filter(p => !p.done)
    for (const p of running) signal(p.pid, 'SIGTERM')
    await Promise.all(running.map(async p => {
      await Promise.race([p.exited, sleep(2000)])
      if (!p.done) signal(p.pid, 'SIGKILL')
      await Promise.race([p.exited, sleep(3000)])
    }))
    await rm(this.dir, { recursive: true, force: true })
    liveDirs.delete(this.dir)
  }
}

function signal (pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig)
  } catch { /* already gone */ }
}

/** Synchronous last resort for the process 'exit' hook: SIGKILL every tracked pid, remove temp dirs. */
export function killAllSync (): void {
  for (const pid of livePids) if (pidAlive(pid)) signal(pid, 'SIGKILL')
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true })
}

