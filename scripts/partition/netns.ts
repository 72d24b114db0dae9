/**
 * The lab network of the partition suite: one Linux network namespace per process (master, two
 * replicas, three sentinels, gateway) on one bridge of our own, a private /24 in 10.213.0.0/16, and
 * partitions made with iptables DROP rules inside the namespaces. Names carry a per-run id (the
 * owner's pid in base 36 plus two random characters) so runs cannot clash and leftovers of a run
 * that died can be recognised and swept.
 */
import { randomInt } from 'node:crypto'
import { readdir, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { isRoot, pidAlive, run, tryRun, tryRunSync } from './shell.js'

/** Prefix of every namespace, bridge and veth this suite creates (and the only ones it sweeps). */
export const PREFIX = 'skvp'
export const NODES = ['m', 'r1', 'r2', 's1', 's2', 's3', 'g'] as const
export type NodeName = typeof NODES[number]
export const REDIS_NODES: readonly NodeName[] = ['m', 'r1', 'r2']
export const SENTINEL_NODES: readonly NodeName[] = ['s1', 's2', 's3']
const HOST_OCTET: Record<NodeName, number> = { m: 10, r1: 11, r2: 12, s1: 21, s2: 22, s3: 23, g: 30 }
/** Matches our link and namespace names; group 1 is the owner's pid in base 36. */
const NAME_RE = new RegExp(`^${PREFIX}([0-9a-z]{5})[0-9a-z]{2}`)

/** Which way a cut drops packets, seen from the namespace it is made in. */
export type Direction = 'in' | 'out' | 'both'

export const ROOT_REQUIRED = 'the partition suite needs root (network namespaces, a bridge and iptables): run it as root, e.g. in CI or with sudo'

/** One run's namespaces, bridge and veth pairs. */
export class Lab {
  /** Root-namespace FORWARD rule we added (only when the host drops bridged traffic by default). */
  private forwardRule: string[] | undefined
  private destroyed = false

  private constructor (readonly id: string, readonly octet: number, private readonly log: (l: string) => void) {}

  /** Sweeps leftovers of dead runs, then builds the namespaces, the bridge and the veths. */
  static async create (log: (l: string) => void): Promise<Lab> {
    if (!isRoot()) throw new Error(ROOT_REQUIRED)
    for (const [tool, pkg] of [['ip', 'iproute2'], ['iptables', 'iptables'], ['ss', 'iproute2']] as const) {
      await run(tool, ['-V']).catch((err: Error) => {
        throw new Error(`the partition suite needs '${tool}' (Debian package ${pkg}): ${err.message}`)
      })
    }
    await sweepStale(log)
    const id = ownId() + randomInt(36 * 36).toString(36).padStart(2, '0')
    const lab = new Lab(id, await freeOctet(), log)
    activeLabs.add(lab)
    try {
      await lab.build()
    } catch (err) {
      await lab.destroy()
      throw err
    }
    return lab
  }

  get bridge (): string { return `${PREFIX}${this.id}br` }
  get rootIp (): string { return `10.213.${this.octet}.1` }
  ns (node: NodeName): string { return `${PREFIX}${this.id}-${node}` }
  ip (node: NodeName): string { return `10.213.${this.octet}.${HOST_OCTET[node]}` }
  private hostVeth (node: NodeName): string { return `${PREFIX}${this.id}${node}` }

  private async build (): Promise<void> {
    const started = Date.now()
    await run('ip', ['link', 'add', this.bridge, 'type', 'bridge'])
    await run('ip', ['addr', 'add', `${this.rootIp}/24`, 'dev', this.bridge])
    await run('ip', ['link', 'set', this.bridge, 'up'])
    for (const node of NODES) {
      const ns = this.ns(node)
      const host = this.hostVeth(node)
      const peer = `${host}p`
      await run('ip', ['netns', 'add', ns])
      await run('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', peer])
      await run('ip', ['link', 'set', peer, 'netns', ns])
      await run('ip', ['-n', ns, 'link', 'set', peer, 'name', 'eth0'])
      await run('ip', ['-n', ns, 'addr', 'add', `${this.ip(node)}/24`, 'dev', 'eth0'])
      await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up'])
      await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
      await run('ip', ['link', 'set', host, 'master', this.bridge])
      await run('ip', ['link', 'set', host, 'up'])
    }
    // With br_netfilter loaded, bridged frames traverse the root namespace's FORWARD chain: a host
    // whose policy is DROP (e.g. Docker's) would silently eat our traffic. Allow only our bridge.
    const forward = await tryRun('iptables', ['-w', '-S', 'FORWARD'])
    if (/^-P FORWARD DROP/m.test(forward)) {
      this.forwardRule = ['FORWARD', '-i', this.bridge, '-o', this.bridge, '-j', 'ACCEPT']
      await run('iptables', ['-w', '-I', ...this.forwardRule])
      this.log(`root FORWARD policy is DROP: allowed traffic within ${this.bridge} only`)
    }
    this.log(`lab ${this.id}: ${NODES.length} namespaces on ${this.bridge} 10.213.${this.octet}.0/24 in ${Date.now() - started} ms`)
  }

  /** Drops, inside `on`'s namespace, packets from (in) and/or to (out) each of `peers`. */
  async block (on: NodeName, peers: readonly NodeName[], dir: Direction): Promise<void> {
    for (const p of peers) {
      if (dir !== 'out') await this.iptables(on, ['-A', 'INPUT', '-s', this.ip(p), '-j', 'DROP'])
      if (dir !== 'in') await this.iptables(on, ['-A', 'OUTPUT', '-d', this.ip(p), '-j', 'DROP'])
    }
  }

  /** Symmetric cut between two groups (rules on side A only, both directions). */
  async cut (a: readonly NodeName[], b: readonly NodeName[]): Promise<void> {
    for (const n of a) await this.block(n, b, 'both')
  }

  /** Removes every cut. */
  async heal (): Promise<void> {
    for (const n of NODES) {
      await this.iptables(n, ['-F', 'INPUT'])
      await this.iptables(n, ['-F', 'OUTPUT'])
    }
  }

  private async iptables (node: NodeName, args: string[]): Promise<void> {
    await run('ip', ['netns', 'exec', this.ns(node), 'iptables', '-w', ...args])
  }

  /** Runs a command inside a node's namespace (e.g. `ss -tin`). */
  exec (node: NodeName, cmd: string, args: string[]): Promise<string> {
    return run('ip', ['netns', 'exec', this.ns(node), cmd, ...args])
  }

  /** Kills whatever still runs in our namespaces, removes veths, namespaces and the bridge. Idempotent. */
  async destroy (): Promise<void> {
    if (this.destroyed) return
    this.destroyed = true
    for (const node of NODES) {
      const pids = (await tryRun('ip', ['netns', 'pids', this.ns(node)])).split(/\s+/).filter(Boolean).map(Number)
      for (const pid of pids) killQuietly(pid)
      await tryRun('ip', ['link', 'del', this.hostVeth(node)])
      await tryRun('ip', ['netns', 'del', this.ns(node)])
    }
    await tryRun('ip', ['link', 'del', this.bridge])
    if (this.forwardRule) await tryRun('iptables', ['-w', '-D', ...this.forwardRule])
    activeLabs.delete(this)
    this.log(`lab ${this.id}: namespaces, veths and bridge removed`)
  }

  /** Synchronous destroy() for the process 'exit' hook. */
  destroySync (): void {
    if (this.destroyed) return
    this.destroyed = true
    for (const node of NODES) {
      const pids = tryRunSync('ip', ['netns', 'pids', this.ns(node)]).split(/\s+/).filter(Boolean).map(Number)
      for (const pid of pids) killQuietly(pid)
      tryRunSync('ip', ['link', 'del', this.hostVeth(node)])
      tryRunSync('ip', ['netns', 'del', this.ns(node)])
    }
    tryRunSync('ip', ['link', 'del', this.bridge])
    if (this.forwardRule) tryRunSync('iptables', ['-w', '-D', ...this.forwardRule])
    activeLabs.delete(this)
  }
}

/** This process's part of every name (its pid in base 36, 5 characters). */
export const ownId = (): string => process.pid.toString(36).padStart(5, '0').slice(-5)

/** Labs not destroyed yet (the exit hook removes them as a last resort). */
export const activeLabs = new Set<Lab>()

function killQuietly (pid: number): void {
  try {
    process.kill(pid, 'SIGKILL')
  } catch { /* already gone */ }
}

/** A third octet for 10.213.X.0/24 that no address or route on this host uses yet. */
async function freeOctet (): Promise<number> {
  const used = (await run('ip', ['-4', '-o', 'addr', 'show'])) + (await run('ip', ['-4', 'route', 'show']))
  for (let i = 0; i < 50; i++) {
    const x = randomInt(1, 255)
    if (!used.includes(`10.213.${x}.`)) return x
  }
  throw new Error('no free 10.213.X.0/24 subnet found on this host')
}

/** Removes namespaces and links of our prefix whose owning process is gone (a run killed with -9). */
export async function sweepStale (log: (l: string) => void): Promise<void> {
  const stale = (name: string): boolean => {
    const m = NAME_RE.exec(name)
    return m !== null && !pidAlive(parseInt(m[1] ?? '', 36))
  }
  const namespaces = (await tryRun('ip', ['netns', 'list'])).split('\n').map(l => l.split(' ')[0] ?? '').filter(stale)
  for (const ns of namespaces) {
    const pids = (await tryRun('ip', ['netns', 'pids', ns])).split(/\s+/).filter(Boolean).map(Number)
    for (const pid of pids) killQuietly(pid)
    await tryRun('ip', ['netns', 'del', ns])
  }
  const links = (await tryRun('ip', ['-o', 'link', 'show'])).split('\n')
    .map(l => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? '').filter(stale)
  for (const link of links) await tryRun('ip', ['link', 'del', link])
  // Temp dirs are named `${PREFIX}-<owner pid>-XXXXXX` (deployment.ts).
  const dirs = (await readdir(os.tmpdir())).filter(d => d.startsWith(`${PREFIX}-`) && stale(`${PREFIX}${d.slice(PREFIX.length + 1, PREFIX.length + 6)}xx`))
  for (const d of dirs) await rm(path.join(os.tmpdir(), d), { recursive: true, force: true })
  if (namespaces.length + links.length + dirs.length > 0) {
    log(`swept leftovers of dead runs: ${namespaces.length} namespaces, ${links.length} links, ${dirs.length} temp dirs`)
  }
}

/** Namespaces and links of this process's runs that still exist (empty after a clean run). */
export async function ownLeftovers (): Promise<string[]> {
  const own = `${PREFIX}${ownId()}`
  const namespaces = (await tryRun('ip', ['netns', 'list'])).split('\n').map(l => l.split(' ')[0] ?? '')
  const links = (await tryRun('ip', ['-o', 'link', 'show'])).split('\n').map(l => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? '')
  return [...namespaces, ...links].filter(n => n.startsWith(own))
}
