// Real Redis Cluster launcher for tests and the demo: N masters + N replicas (one per master), all on
// 127.0.0.1 with OS-assigned ports, each node in its own subdir of a fresh temp dir, created with
// `redis-cli --cluster create`. The same ACL users as the Sentinel topology (src/security/acl.ts).
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import calculateSlot from 'cluster-key-slot'
import type { Redis } from 'ioredis'
import { aclConfigLines, CONTROL_USER, DATA_USER } from '../../src/security/acl.js'
import { aclEnv, startInProcessWith, TEST_GATEWAY_ENV, type InProcessGateway, type Teardown } from './gateway.js'
import type { AclCredentials } from './topology.js'
import { HOST, NodeSet, freePorts, newClient, probe, resolveBinaries, waitUntil, type NodeProc } from './topology-procs.js'

const run = promisify(execFile)

/** What startCluster starts. */
export interface ClusterOptions {
  /** Masters (each gets one replica). Default 3. */
  masters?: number
  /** cluster-node-timeout: how long until a silent node is flagged failing. Default 1000 ms. */
  nodeTimeoutMs?: number
  log?: (line: string) => void
}

/** One node as the cluster sees it now (CLUSTER NODES of a live node). */
export interface ClusterNodeView { id: string; port: number; role: 'master' | 'replica'; masterId: string | null; failed: boolean; slots: string[] }

/** A running cluster of the tests. */
export interface Cluster {
  nodes: NodeProc[]
  /** The seed list the gateway gets (REDIS_CLUSTER_NODES): every node. */
  seedList: string
  acl: { data: AclCredentials; control: AclCredentials }
  /** A short-lived ioredis client to one node (default user); the caller quits it. */
  client(port: number): Redis
  /** The cluster's view, asked of the first live node that answers. */
  view(): Promise<ClusterNodeView[]>
  /** Port of the master serving `slot` now. */
  masterOf(slot: number): Promise<number>
  /**
   * Moves hash slot `slot` to the master on `toPort` as `redis-cli --cluster reshard` does: SETSLOT
   * IMPORTING/MIGRATING, MIGRATE of its keys in batches (bounded), SETSLOT NODE on every master.
   * Returns how many keys moved.
   */
  migrateSlot(slot: number, toPort: number): Promise<number>
  /**
   * Starts a slot's migration to the master on `toPort` and holds it there: SETSLOT IMPORTING on
   * it, MIGRATING on the slot's owner, MIGRATE of `keys` only. Returns the owner's port.
   */
  holdMigration(slot: number, toPort: number, keys?: readonly string[]): Promise<number>
  /**
   * Scale-out: starts one more node (same config and ACL users, its own subdir, a free port), joins
   * it with CLUSTER MEET as a master serving no slot, and waits until every node lists it alike.
   * Stopped with the cluster.
   */
  addNode(): Promise<NodeProc>
  /** Keys of `keys` the master serving their slot now does not hold with value = key ("key@:port=found"). */
  lost(keys: readonly string[]): Promise<string[]>
  /** Bounded wait: cluster_state ok on every live node, every live replica's link up, views agree. */
  waitHealthy(timeoutMs?: number): Promise<void>
  kill(proc: NodeProc, signal?: NodeJS.Signals): Promise<void>
  restart(proc: NodeProc): Promise<void>
  stop(): Promise<void>
}

/** Parses CLUSTER NODES (test-side: the gateway has its own parser in src/cluster/nodes.ts). */
function parseNodes (text: string): ClusterNodeView[] {
  return text.trim().split('\n').map(line => {
    const f = line.split(' ')
    const flags = (f[2] ?? '').split(',')
    return {
      id: f[0]!,
      port: Number((f[1] ?? '').split('@')[0]!.split(':')[1]),
      role: flags.includes('master') ? 'master' : 'replica',
      masterId: f[3] === '-' ? null : f[3]!,
      failed: flags.includes('fail') || flags.includes('fail?'),
      slots: f.slice(8)
    }
  })
}

class ClusterImpl implements Cluster {
  readonly nodes: NodeProc[] = []
  seedList = ''
  readonly acl: Cluster['acl']
  readonly procs: NodeSet
  /** Every node's config lines (cluster settings, the ACL users). */
  private readonly conf: string[]

  constructor (readonly opts: Required<Omit<ClusterOptions, 'log'>>, root: string, private readonly log: (line: string) => void) {
    const pw = (): string => randomBytes(12).toString('hex')
    this.acl = { data: { username: DATA_USER, password: pw() }, control: { username: CONTROL_USER, password: pw() } }
    this.procs = new NodeSet(root, resolveBinaries(), () => undefined, log)
    this.conf = [
      'cluster-enabled yes', 'cluster-config-file nodes.conf', `cluster-node-timeout ${opts.nodeTimeoutMs}`,
      // A replica may always take over (no data-age limit): the tests kill masters on purpose.
      'cluster-replica-validity-factor 0', 'save ""', 'appendonly no',
      ...aclConfigLines({ dataPassword: this.acl.data.password, controlPassword: this.acl.control.password })
    ]
  }

  /** Starts a node on each of `ports` and waits until each answers PING. */
  private async launch (ports: readonly number[]): Promise<NodeProc[]> {
    const procs: NodeProc[] = []
    for (const port of ports) {
      const proc = this.procs.create('redis', port)
      this.nodes.push(proc)
      procs.push(proc)
      await this.procs.launch(proc, this.conf)
    }
    await Promise.all(procs.map(async p => await this.procs.waitPing(p)))
    return procs
  }

  async start (): Promise<void> {
    const ports = await freePorts(this.opts.masters * 2)
    await this.launch(ports)
    this.seedList = ports.map(p => `${HOST}:${p}`).join(',')
    // redis-cli pairs the first N addresses as masters and the rest as their replicas.
    await run('redis-cli', ['--cluster', 'create', ...ports.map(p => `${HOST}:${p}`), '--cluster-replicas', '1', '--cluster-yes'], { timeout: 20_000 })
    this.log(`cluster created on ${this.seedList}`)
    await this.waitHealthy(20_000)
  }

  client (port: number): Redis { return newClient(port, undefined, false) }

  async view (): Promise<ClusterNodeView[]> {
    for (const p of this.nodes.filter(n => this.procs.isLive(n))) {
      try {
        return parseNodes(String(await probe(p.port, undefined, async c => await c.call('CLUSTER', 'NODES'))))
      } catch { /* next node */ }
    }
    throw new Error('no live cluster node answers CLUSTER NODES')
  }

  async masterOf (slot: number): Promise<number> {
    const slots = await probe(this.nodes.find(n => this.procs.isLive(n))!.port, undefined, async c => await c.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>
    const range = slots.find(([a, b]) => slot >= a && slot <= b)
    if (range === undefined) throw new Error(`slot ${slot} is not served`)
    return Number(range[2][1])
  }

  async holdMigration (slot: number, toPort: number, keys: readonly string[] = []): Promise<number> {
    const view = await this.view()
    const fromPort = await this.masterOf(slot)
    const id = (port: number): string => view.find(n => n.port === port)!.id
    await onNode(this, toPort, async c => await c.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', id(fromPort)))
    await onNode(this, fromPort, async c => {
      await c.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', id(toPort))
      if (keys.length > 0) await c.call('MIGRATE', HOST, toPort, '', 0, 5000, 'KEYS', ...keys)
    })
    return fromPort
  }

  async migrateSlot (slot: number, toPort: number): Promise<number> {
    const fromPort = await this.holdMigration(slot, toPort)
    let moved = 0
    await onNode(this, fromPort, async s => {
      for (let round = 0; round < 1000; round++) {
        const keys = await s.call('CLUSTER', 'GETKEYSINSLOT', slot, 100) as string[]
        if (keys.length === 0) break
        await s.call('MIGRATE', HOST, toPort, '', 0, 5000, 'KEYS', ...keys)
        moved += keys.length
      }
    })
    // The new owner first (it bumps its config epoch: its claim wins), as Redis documents; it may
    // serve no slot yet (scale-out). Then every other master.
    const view = await this.view()
    const to = view.find(n => n.port === toPort)!
    for (const n of [to, ...view.filter(v => v.role === 'master' && v.slots.length > 0 && !v.failed && v !== to)]) {
      await probe(n.port, undefined, async c => await c.call('CLUSTER', 'SETSLOT', slot, 'NODE', to.id))
    }
    return moved
  }

  async addNode (): Promise<NodeProc> {
    const [proc] = await this.launch(await freePorts(1))
    const seed = this.nodes.find(n => n !== proc && this.procs.isLive(n))!
    await probe(proc!.port, undefined, async c => await c.call('CLUSTER', 'MEET', HOST, seed.port))
    this.log(`node :${proc!.port} met the cluster`)
    await this.waitHealthy()
    return proc!
  }

  async lost (keys: readonly string[]): Promise<string[]> {
    const byMaster = new Map<number, string[]>()
    for (const k of keys) {
      const port = await this.masterOf(calculateSlot(k))
      byMaster.set(port, [...(byMaster.get(port) ?? []), k])
    }
    const lost: string[] = []
    for (const [port, list] of byMaster) {
      const client = this.client(port)
      try {
        const p = client.pipeline()
        for (const k of list) p.get(k)
        const res = await p.exec()
        list.forEach((k, i) => { if (res?.[i]?.[1] !== k) lost.push(`${k}@:${port}=${String(res?.[i]?.[1] ?? res?.[i]?.[0])}`) })
      } finally {
        client.disconnect()
      }
    }
    return lost
  }

  async waitHealthy (timeoutMs = 20_000): Promise<void> {
    await waitUntil('the cluster to be healthy', timeoutMs, async () => {
      const live = this.nodes.filter(n => this.procs.isLive(n))
      const views: string[] = []
      for (const p of live) {
        const info = String(await probe(p.port, undefined, async c => await c.call('CLUSTER', 'INFO')))
        if (!info.includes('cluster_state:ok')) return `:${p.port} does not say cluster_state:ok`
        const nodes = parseNodes(String(await probe(p.port, undefined, async c => await c.call('CLUSTER', 'NODES'))))
        const me = nodes.find(n => n.port === p.port)
        if (me?.role === 'replica') {
          const repl = String(await probe(p.port, undefined, async c => await c.info('replication')))
          if (!repl.includes('master_link_status:up')) return `replica :${p.port} link not up`
        }
        views.push(nodes.filter(n => !n.failed && live.some(l => l.port === n.port)).map(n => `${n.port}:${n.role}:${n.slots.join('/')}`).sort().join(' '))
      }
      return views.every(v => v === views[0]) ? true : `views differ: ${views.join(' | ')}`
    }, 100)
  }

  async kill (proc: NodeProc, sig: NodeJS.Signals = 'SIGKILL'): Promise<void> { await this.procs.kill(proc, sig) }
  async restart (proc: NodeProc): Promise<void> { await this.procs.restart(proc) }
  async stop (): Promise<void> { await this.procs.stop() }
}

/** Runs `fn` with a short-lived client to the node on `port` (default user), disconnected afterwards. */
export async function onNode<T> (cluster: Pick<Cluster, 'client'>, port: number, fn: (c: Redis) => Promise<T>): Promise<T> {
  const c = cluster.client(port)
  try { return await fn(c) } finally { c.disconnect() }
}

/** GET of each key on the node on `port`, each after ASKING (it may only import their slot). */
export async function askingGet (cluster: Pick<Cluster, 'client'>, port: number, keys: readonly string[]): Promise<Array<string | null>> {
  return await onNode(cluster, port, async c => {
    const out: Array<string | null> = []
    for (const k of keys) { await c.asking(); out.push(await c.get(k)) }
    return out
  })
}

/** Starts a cluster; on failure everything started is stopped before the error is thrown. */
export async function startCluster (opts: ClusterOptions = {}): Promise<Cluster> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'skv-cluster-'))
  const c = new ClusterImpl({ masters: opts.masters ?? 3, nodeTimeoutMs: opts.nodeTimeoutMs ?? 1000 }, root, opts.log ?? (() => {}))
  try {
    await c.start()
    return c
  } catch (err) {
    await c.stop()
    throw err
  }
}

/** startCluster, stopped on teardown. */
export async function clusterFor (t: Teardown, opts?: ClusterOptions): Promise<Cluster> {
  const c = await startCluster(opts)
  t.teardown(async () => await c.stop())
  return c
}

/** Environment for a gateway in front of `cluster` (tests may override any variable). */
export function clusterGatewayEnv (cluster: Cluster, extra: Record<string, string> = {}): Record<string, string> {
  return { REDIS_CLUSTER_NODES: cluster.seedList, ...aclEnv(cluster.acl), ...TEST_GATEWAY_ENV, ...extra }
}

/** A gateway in Cluster mode built and listening in this process; closed on teardown. */
export async function startClusterGateway (t: Teardown, cluster: Cluster, extra: Record<string, string> = {}): Promise<InProcessGateway> {
  return await startInProcessWith(t, clusterGatewayEnv(cluster, extra))
}
