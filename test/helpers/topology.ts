// Real Redis Sentinel topology launcher for tests and the demo: 1 master + N replicas + M sentinels,
// all on 127.0.0.1 with OS-assigned ports, each node in its own subdir of a fresh temp dir.
import { readFileSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { ConnectionOptions } from 'node:tls'
import type { Redis } from 'ioredis'
import { randomBytes } from 'node:crypto'
import { aclConfigLines, CONTROL_USER, DATA_USER } from '../../src/security/acl.js'
import {
  FatalWaitError, HOST, NodeSet, freePorts, hasBadFlag, kv, newClient, parseRole, probe, resolveBinaries, sleep,
  startForwarder, waitUntil, type Binaries, type Forwarder, type NodeProc,
} from './topology-procs.js'

export { MISSING_BINARIES_MESSAGE, type NodeProc } from './topology-procs.js'
export interface TopologyOptions {
  masterName?: string
  replicas?: number
  sentinels?: number
  quorum?: number
  downAfterMs?: number
  failoverTimeoutMs?: number
  password?: string
  sentinelPassword?: string
  redisConf?: string[]
  log?: (line: string) => void
  /** TLS only: every node and sentinel listens with `tls-port` (`port 0`), replicates and talks to the
   *  others over TLS (`tls-replication yes`), without asking clients for certificates. The sentinels use
   *  sentinelCertFile/KeyFile when given. Probes and client() verify against caFile (sentinels: under
   *  sentinelServername when given). Default: plain TCP. */
  tls?: TopologyTls
  /** NAT: every redis node announces `announceHost:<its port>` (replica-announce-ip; the sentinels monitor
   *  the master there), where an in-process forwarder accepts only connections from `sourceHost`, the
   *  address the redis nodes and sentinels bind their outgoing connections to (`bind-source-addr`).
   *  So the sentinels report addresses that a client connecting from 127.0.0.1 cannot use, while the
   *  nodes stay reachable at 127.0.0.1:<port>. Default: nodes announce 127.0.0.1. */
  nat?: { announceHost: string; sourceHost: string }
  /** Redis ACL users (src/security/acl.ts): the data and control users in every redis node's config file
   *  (so they survive restarts and the sentinels' config rewrites); gatewayEnv() logs the gateway in
   *  with them. `false`: none (the gateway uses the default user). Default: true. */
  acl?: boolean
}
export interface AclCredentials { username: string; password: string }
export interface TopologyTls {
  certFile: string
  keyFile: string
  caFile: string
  sentinelCertFile?: string
  sentinelKeyFile?: string
  sentinelServername?: string
}
export interface Topology {
  masterName: string
  redis: NodeProc[]
  sentinels: NodeProc[]
  sentinelList: string
  password?: string
  sentinelPassword?: string
  /** The host the sentinels report for the redis nodes (127.0.0.1, or nat.announceHost). */
  announceHost: string
  /** The ACL users every redis node has (undefined with `acl: false`). */
  acl?: { data: AclCredentials; control: AclCredentials }
  /** The master as the live sentinels report it (majority, else the most common reachable answer). */
  master(): Promise<{ host: string; port: number }>
  /** NodeProc of the current master per sentinels. */
  masterProc(): Promise<NodeProc>
  /** A short-lived ioredis client to a node (with the right password); caller quits it (for a sentinel,
   *  quit() just disconnects: Sentinel 7.0 has no QUIT command). */
  client(port: number): Redis
  /** SENTINEL FAILOVER (retrying INPROG/NOGOODSLAVE, bounded); resolves once ALL live sentinels report the
   *  new master and its ROLE is master. The old master is still a master at that point (demoted ~10 s later). */
  failover(): Promise<{ from: number; to: number; ms: number }>
  /** Bounded (default 40 s) wait until live sentinels agree on the master, every other live redis node is a
   *  connected replica of it, and every live sentinel lists every live replica without s_down/o_down/
   *  disconnected flags (and the master without s_down/o_down/failover_in_progress). "Live" = alive and not
   *  SIGSTOPped. strict: also until each sentinel's own INFO of each replica says role slave and link ok
   *  (sentinels refresh replica INFO only every 10 s, so this adds up to ~10 s after a failover). */
  waitConverged(timeoutMs?: number, opts?: { strict?: boolean }): Promise<void>
  /** Signals the node by pid (SIGKILL default); for SIGKILL/SIGTERM marks alive=false once the pid is gone. */
  kill(proc: NodeProc, signal?: NodeJS.Signals): Promise<void>
  /** Restarts a killed node on the same port with its (possibly sentinel-rewritten) config; waits for PING. */
  restart(proc: NodeProc): Promise<void>
  /** Stops every process (SIGCONT, SIGTERM, SIGKILL after 500 ms) and removes the temp dir. Idempotent. */
  stop(): Promise<void>
}

const START_TIMEOUT_MS = 45_000
type FullOptions = Required<Omit<TopologyOptions, 'password' | 'sentinelPassword' | 'log' | 'tls' | 'nat' | 'acl'>> & TopologyOptions

class TopologyImpl implements Topology {
  readonly masterName: string
  readonly redis: NodeProc[] = []
  readonly sentinels: NodeProc[] = []
  sentinelList = ''
  readonly password: string | undefined
  readonly sentinelPassword: string | undefined
  readonly announceHost: string
  readonly acl: Topology['acl']
  readonly procs: NodeSet
  readonly forwarders: Forwarder[] = []
  private readonly log: (line: string) => void
  private readonly ca: Buffer | undefined

  constructor(readonly opts: FullOptions, bins: Binaries, root: string) {
    this.masterName = opts.masterName
    this.password = opts.password
    this.sentinelPassword = opts.sentinelPassword
    this.announceHost = opts.nat?.announceHost ?? HOST
    const pw = (): string => randomBytes(12).toString('hex')
    this.acl = opts.acl === false ? undefined : { data: { username: DATA_USER, password: pw() }, control: { username: CONTROL_USER, password: pw() } }
    this.log = opts.log ?? (() => {})
    this.ca = opts.tls !== undefined ? readFileSync(opts.tls.caFile) : undefined
    this.procs = new NodeSet(root, bins, (port) => this.pw(port), this.log, (port) => this.tlsOf(port))
  }

  private isSentinel(port: number): boolean {
    return this.sentinels.some((s) => s.port === port)
  }

  private pw(port: number): string | undefined {
    return this.isSentinel(port) ? this.sentinelPassword : this.password
  }

  /** TLS options for a probe/client of the node on `port` (undefined: plain TCP). */
  tlsOf(port: number): ConnectionOptions | undefined {
    if (this.ca === undefined) return undefined
    const servername = this.isSentinel(port) ? this.opts.tls?.sentinelServername : undefined
    return { ca: this.ca, ...(servername !== undefined ? { servername } : {}) }
  }

  private ask<T>(proc: NodeProc, fn: (c: Redis) => Promise<T>): Promise<T> {
    return probe(proc.port, this.pw(proc.port), fn, this.tlsOf(proc.port))
  }

  /** Registers (in call order) and launches a node. */
  async addNode(role: NodeProc['role'], port: number, lines: string[]): Promise<NodeProc> {
    const proc = this.procs.create(role, port)
    ;(role === 'redis' ? this.redis : this.sentinels).push(proc)
    await this.procs.launch(proc, lines)
    return proc
  }

  async replicaState(proc: NodeProc, masterPort: number): Promise<true | string> {
    const role = parseRole(await this.ask(proc, (c) => c.call('ROLE')))
    if (role.role !== 'slave') return `redis :${proc.port} has ROLE ${role.role}, expected slave of :${masterPort}`
    if (role.port !== masterPort) return `redis :${proc.port} is a replica of :${role.port}, expected :${masterPort}`
    return role.state === 'connected' ? true : `redis :${proc.port} replication state is '${role.state}'`
  }

  private sentinelAddr(s: NodeProc): Promise<string> {
    return this.ask(s, async (c) => {
      const r = await c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.masterName)
      if (!Array.isArray(r)) throw new Error(`sentinel :${s.port} does not know master '${this.masterName}'`)
      return `${String(r[0])}:${String(r[1])}`
    })
  }

  /** Startup readiness of the sentinels (master known, all replicas and other sentinels discovered). */
  async sentinelReady(s: NodeProc, masterPort: number): Promise<true | string> {
    const addr = await this.sentinelAddr(s)
    if (addr !== `${this.announceHost}:${masterPort}`) return `sentinel :${s.port} reports master ${addr}`
    const [replicas, others] = await this.ask(s, (c) => Promise.all([
      c.call('SENTINEL', 'REPLICAS', this.masterName), c.call('SENTINEL', 'SENTINELS', this.masterName),
    ]))
    const nRep = Array.isArray(replicas) ? replicas.length : 0
    const nSen = Array.isArray(others) ? others.length : 0
    if (nRep !== this.opts.replicas) return `sentinel :${s.port} lists ${nRep}/${this.opts.replicas} replicas`
    const flagged = (replicas as unknown[]).map(kv).find((e) => hasBadFlag(e.flags))
    if (flagged) return `sentinel :${s.port} flags replica :${flagged.port} '${flagged.flags}'`
    if (nSen !== this.opts.sentinels - 1) return `sentinel :${s.port} knows ${nSen}/${this.opts.sentinels - 1} other sentinels`
    return true
  }

  /** Alive and not SIGSTOPped. */
  private live(list: NodeProc[]): NodeProc[] {
    return list.filter((p) => this.procs.isLive(p))
  }

  async master(): Promise<{ host: string; port: number }> {
    const live = this.live(this.sentinels)
    const answers = await Promise.allSettled(live.map((s) => this.sentinelAddr(s)))
    const votes = new Map<string, number>()
    for (const a of answers) if (a.status === 'fulfilled') votes.set(a.value, (votes.get(a.value) ?? 0) + 1)
    const best = [...votes.entries()].sort((a, b) => b[1] - a[1])[0]
    if (!best) throw new Error(`no sentinel reachable to ask for master '${this.masterName}' (${live.length} live)`)
    const [host, port] = best[0].split(':')
    return { host: host ?? HOST, port: Number(port) }
  }

  async masterProc(): Promise<NodeProc> {
    const { port } = await this.master()
    const p = this.redis.find((r) => r.port === port)
    if (!p) throw new Error(`sentinels report master :${port}, which is not a node of this topology`)
    return p
  }

  client(port: number): Redis {
    const c = newClient(port, this.pw(port), false, this.tlsOf(port))
    if (this.sentinels.some((s) => s.port === port)) {
      // Sentinel 7.0 has no QUIT command ("ERR unknown command 'quit'"): make quit() just disconnect.
      Object.assign(c, { quit: async () => { c.disconnect(); return 'OK' } })
    }
    return c
  }

  async failover(): Promise<{ from: number; to: number; ms: number }> {
    const start = Date.now()
    const from = (await this.master()).port
    const bound = 2 * this.opts.failoverTimeoutMs + 10_000
    let attempt = 0
    await waitUntil(`SENTINEL FAILOVER ${this.masterName} to be accepted`, bound, async () => {
      const live = this.live(this.sentinels)
      const s = live[attempt++ % Math.max(1, live.length)]
      if (!s) throw new FatalWaitError('no live sentinel to send SENTINEL FAILOVER to')
      try {
        await this.ask(s, (c) => c.call('SENTINEL', 'FAILOVER', this.masterName))
        this.log(`SENTINEL FAILOVER accepted by :${s.port} (master was :${from})`)
        return true
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err)
        if (/INPROG|NOGOODSLAVE/.test(msg)) return `sentinel :${s.port} answered ${msg}`
        throw new FatalWaitError(`SENTINEL FAILOVER on :${s.port} failed: ${msg}`)
      }
    }, 250)
    let to = 0
    await waitUntil(`all live sentinels to agree on a new master (old :${from})`, bound, async () => {
      const live = this.live(this.sentinels)
      const addrs = await Promise.all(live.map((s) => this.sentinelAddr(s)))
      const first = addrs[0]
      if (!first || first === `${this.announceHost}:${from}`) return `sentinels still report :${from}`
      if (addrs.some((a) => a !== first)) return `sentinels disagree: ${addrs.join(' ')}`
      to = Number(first.split(':')[1])
      const role = parseRole(await probe(to, this.password, (c) => c.call('ROLE'), this.tlsOf(to)))
      return role.role === 'master' ? true : `new master :${to} still has ROLE ${role.role}`
    })
    const ms = Date.now() - start
    this.log(`failover :${from} -> :${to} in ${ms} ms`)
    return { from, to, ms }
  }

  /** One convergence check: true, or what is not converged yet. */
  async converged(strict = false): Promise<true | string> {
    const sentinels = this.live(this.sentinels)
    if (sentinels.length === 0) return 'no live sentinel'
    const addrs = await Promise.all(sentinels.map((s) => this.sentinelAddr(s).catch((e: Error) => `unreachable (${e.message})`)))
    if (addrs.some((a) => a !== addrs[0])) {
      return `sentinels disagree on the master: ${sentinels.map((s, i) => `:${s.port}=>${addrs[i]}`).join(' ')}`
    }
    const masterPort = Number(addrs[0]?.split(':')[1])
    const master = this.redis.find((r) => r.port === masterPort)
    if (!master?.alive) return `sentinels report master ${addrs[0]}, which is not a live node`
    const mrole = parseRole(await this.ask(master, (c) => c.call('ROLE')))
    if (mrole.role !== 'master') return `master :${masterPort} has ROLE ${mrole.role}`
    const replicas = this.live(this.redis).filter((r) => r !== master)
    for (const r of replicas) {
      const st = await this.replicaState(r, masterPort)
      if (st !== true) return st
    }
    for (const s of sentinels) {
      const [m, list] = await this.ask(s, (c) => Promise.all([
        c.call('SENTINEL', 'MASTER', this.masterName), c.call('SENTINEL', 'REPLICAS', this.masterName),
      ]))
      const mflags = kv(m).flags ?? ''
      if (/s_down|o_down|failover_in_progress/.test(mflags)) return `sentinel :${s.port} master flags '${mflags}'`
      const entries = (Array.isArray(list) ? list : []).map(kv)
      for (const r of replicas) {
        const e = entries.find((x) => x.ip === this.announceHost && Number(x.port) === r.port)
        if (!e) return `sentinel :${s.port} does not list replica :${r.port}`
        const bad = hasBadFlag(e.flags)
        if (bad) return `sentinel :${s.port} flags replica :${r.port} '${e.flags}'`
        if (!strict) continue
        if (e['role-reported'] !== 'slave') return `sentinel :${s.port} still sees :${r.port} reporting role ${e['role-reported']}`
        if (e['master-link-status'] !== 'ok') return `sentinel :${s.port} sees :${r.port} master-link-status ${e['master-link-status']}`
      }
    }
    return true
  }

  async waitConverged(timeoutMs = 40_000, opts: { strict?: boolean } = {}): Promise<void> {
    const start = Date.now()
    await waitUntil('the topology to converge', timeoutMs, () => this.converged(opts.strict))
    this.log(`converged in ${Date.now() - start} ms`)
  }

  kill(proc: NodeProc, sig: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return this.procs.kill(proc, sig)
  }

  restart(proc: NodeProc): Promise<void> {
    return this.procs.restart(proc)
  }

  async stop(): Promise<void> {
    await this.procs.stop()
    await Promise.all(this.forwarders.splice(0).map((f) => f.close()))
  }
}

async function startOnce(opts: FullOptions, bins: Binaries): Promise<TopologyImpl> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'skv-'))
  const topo = new TopologyImpl(opts, bins, root)
  try {
    const started = Date.now()
    const ports = await freePorts(1 + opts.replicas + opts.sentinels)
    const [masterPort = 0] = ports
    const auth = opts.password !== undefined ? [`requirepass ${opts.password}`, `masterauth ${opts.password}`] : []
    const tls = opts.tls
    // Later lines win: `port 0` turns the plain port (from the NodeSet base lines) off.
    const tlsLines = (port: number, cert: string, key: string): string[] => tls === undefined ? [] : [
      'port 0', `tls-port ${port}`, `tls-cert-file ${cert}`, `tls-key-file ${key}`, `tls-ca-cert-file ${tls.caFile}`,
      'tls-replication yes', 'tls-auth-clients no',
    ]
    const nat = opts.nat
    const natRedis = nat === undefined ? [] : [`replica-announce-ip ${nat.announceHost}`, `bind-source-addr ${nat.sourceHost}`]
    if (nat !== undefined) {
      for (const port of ports.slice(0, 1 + opts.replicas)) {
        topo.forwarders.push(await startForwarder(nat.announceHost, port, port, nat.sourceHost))
      }
    }
    const acl = topo.acl === undefined ? [] : aclConfigLines({ dataPassword: topo.acl.data.password, controlPassword: topo.acl.control.password })
    const redisBase = ['save ""', 'appendonly no', 'repl-diskless-sync yes', 'repl-diskless-sync-delay 0', ...auth, ...acl]
    await Promise.all(ports.slice(0, 1 + opts.replicas).map((port, i) => topo.addNode('redis', port, [
      ...redisBase, ...(tls ? tlsLines(port, tls.certFile, tls.keyFile) : []), ...natRedis,
      // Replicas follow the master at the address the sentinels know it by (else they are not "good slaves").
      ...(i > 0 ? [`replicaof ${topo.announceHost} ${masterPort}`] : []), ...opts.redisConf,
    ])))
    await Promise.all(topo.redis.map((p) => topo.procs.waitPing(p)))
    // Sentinels start once replicas are connected, so their first INFO of the master already lists them.
    await waitUntil('replicas to be connected to the master', START_TIMEOUT_MS, async () => {
      for (const r of topo.redis.slice(1)) {
        const st = await topo.replicaState(r, masterPort)
        if (st !== true) return st
      }
      return true
    }, 50)
    const n = opts.masterName
    const sentinelConf = [
      'sentinel resolve-hostnames no',
      ...(nat === undefined ? [] : [`bind-source-addr ${nat.sourceHost}`, `sentinel announce-ip ${HOST}`]),
      `sentinel monitor ${n} ${topo.announceHost} ${masterPort} ${opts.quorum}`,
      `sentinel down-after-milliseconds ${n} ${opts.downAfterMs}`,
      `sentinel failover-timeout ${n} ${opts.failoverTimeoutMs}`,
      `sentinel parallel-syncs ${n} 1`,
      ...(opts.password !== undefined ? [`sentinel auth-pass ${n} ${opts.password}`] : []),
      ...(opts.sentinelPassword !== undefined
        ? [`requirepass ${opts.sentinelPassword}`, `sentinel sentinel-pass ${opts.sentinelPassword}`] : []),
    ]
    await Promise.all(ports.slice(1 + opts.replicas).map((port) => topo.addNode('sentinel', port, [
      ...sentinelConf, ...(tls ? tlsLines(port, tls.sentinelCertFile ?? tls.certFile, tls.sentinelKeyFile ?? tls.keyFile) : []),
    ])))
    topo.sentinelList = topo.sentinels.map((s) => `${HOST}:${s.port}`).join(',')
    await Promise.all(topo.sentinels.map((s) => topo.procs.waitPing(s)))
    await waitUntil('sentinels to discover the master, its replicas and each other', START_TIMEOUT_MS, async () => {
      for (const s of topo.sentinels) {
        const st = await topo.sentinelReady(s, masterPort)
        if (st !== true) return st
      }
      return true
    }, 100)
    opts.log?.(`topology ready in ${Date.now() - started} ms: REDIS_SENTINELS=${topo.sentinelList} master :${masterPort}`)
    return topo
  } catch (err) {
    await topo.stop().catch(() => {})
    throw err
  }
}

export async function startTopology(opts: TopologyOptions = {}): Promise<Topology> {
  const bins = resolveBinaries()
  const full = {
    ...opts,
    masterName: opts.masterName ?? 'mymaster',
    replicas: opts.replicas ?? 2,
    sentinels: opts.sentinels ?? 3,
    quorum: opts.quorum ?? 2,
    downAfterMs: opts.downAfterMs ?? 1000,
    failoverTimeoutMs: opts.failoverTimeoutMs ?? 5000,
    redisConf: opts.redisConf ?? [],
  }
  // A port handed out by the OS can be taken by someone else before redis binds it: retry then.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(full, bins)
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err)
      if (attempt >= 3 || !/Address already in use|EADDRINUSE/i.test(msg)) throw err
      opts.log?.(`port conflict on startup, retrying (${attempt}/3)`)
      await sleep(100)
    }
  }
}

export async function topologyFor(t: { teardown(fn: () => unknown): void }, opts?: TopologyOptions): Promise<Topology> {
  const topo = await startTopology(opts)
  t.teardown(() => topo.stop())
  return topo
}
