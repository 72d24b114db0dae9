/**
 * What the suite observes from the root namespace: a timeline of its own actions and of the
 * sentinels' view (master, nodes flagged down), convergence after the heal, and the final check of
 * every attempted key on every redis node.
 */
import type { Redis } from 'ioredis'
import { MASTER_NAME, type Deployment } from './deployment.js'
import { REDIS_NODES, SENTINEL_NODES, type NodeName } from './netns.js'
import { sleep } from './shell.js'

export interface Event { at: number; label: string }

/** Time-stamped events of one scenario; times printed relative to its start. */
export class Timeline {
  readonly t0 = Date.now()
  readonly events: Event[] = []
  constructor (private readonly log: (l: string) => void) {}
  mark (label: string): number {
    const at = Date.now()
    this.events.push({ at, label })
    this.log(`${this.rel(at)} ${label}`)
    return at
  }

  rel (at: number): string { return `+${((at - this.t0) / 1000).toFixed(1)}s` }
}

const flagsOf = (entry: unknown): Record<string, string> => {
  const out: Record<string, string> = {}
  if (Array.isArray(entry)) for (let i = 0; i + 1 < entry.length; i += 2) out[String(entry[i])] = String(entry[i + 1])
  return out
}
const isDown = (flags: string | undefined): boolean => /(^|,)(s_down|o_down|disconnected)(,|$)/.test(flags ?? '')

/**
 * Polls the three sentinels every 100 ms (bounded by stop() or maxMs): the master they name and
 * which redis nodes any of them flags s_down, o_down or disconnected (not promotable). Changes go to the timeline; the intervals in
 * which a node was flagged down are kept (requirement 1 of issue 11 allows losing only writes
 * acknowledged while the promoted node was flagged down).
 */
export class SentinelWatch {
  /** Per node: [from, to] intervals flagged down by at least one sentinel (`to` Infinity: still). */
  readonly down = new Map<NodeName, Array<[number, number]>>()
  private master = ''
  private running: Promise<void> | undefined
  private stopping = false
  private readonly clients: Redis[]

  constructor (private readonly dep: Deployment, private readonly timeline: Timeline, private readonly maxMs: number) {
    this.clients = SENTINEL_NODES.map(s => dep.client(s))
  }

  start (): void { this.running = this.loop() }

  async stop (): Promise<void> {
    this.stopping = true
    await this.running
    for (const c of this.clients) c.disconnect()
  }

  /** Whether `node` was flagged down at time `at`, or at any time between `at` and `until`. */
  downAt (node: NodeName, at: number, until = at): boolean {
    return (this.down.get(node) ?? []).some(([a, b]) => until >= a && at <= b)
  }

  private async loop (): Promise<void> {
    const end = Date.now() + this.maxMs
    while (!this.stopping && Date.now() < end) {
      await this.poll().catch(() => {})
      // 100 ms: at ~250 writes/s a coarser sample blurs the window by dozens of writes.
      await sleep(100)
    }
  }

  private async poll (): Promise<void> {
    const views = await Promise.all(this.clients.map(async c => {
      try {
        const [addr, master, replicas] = await Promise.all([
          c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME),
          c.call('SENTINEL', 'MASTER', MASTER_NAME),
          c.call('SENTINEL', 'REPLICAS', MASTER_NAME)
        ]) as [unknown[], unknown, unknown[]]
        return { addr: String(addr[0]), entries: [master, ...replicas].map(flagsOf) }
      } catch {
        return undefined
      }
    }))
    const answered = views.filter(v => v !== undefined)
    const names = answered.map(v => this.dep.nodeOf(v.addr) ?? v.addr)
    const summary = names.join(',')
    if (summary !== this.master && answered.length > 0) {
      this.master = summary
      this.timeline.mark(`sentinels name master ${names.every(n => n === names[0]) ? `${names[0]} (${names.length}/3)` : summary}`)
    }
    const now = Date.now()
    for (const node of REDIS_NODES) {
      const seen = answered.map(v => v.entries.find(e => this.dep.nodeOf(e.ip ?? '') === node)?.flags ?? 'not listed')
      const flagged = seen.some(isDown)
      const list = this.down.get(node) ?? []
      const open = list.at(-1)
      if (flagged && (open === undefined || open[1] !== Infinity)) {
        list.push([now, Infinity])
        this.timeline.mark(`sentinels flag ${node} down (${[...new Set(seen)].join(' / ')})`)
      } else if (!flagged && open !== undefined && open[1] === Infinity) {
        open[1] = now
        this.timeline.mark(`sentinels no longer flag ${node} down (${[...new Set(seen)].join(' / ')})`)
      }
      this.down.set(node, list)
    }
  }
}

/** One convergence check: true, or what is not converged yet. Returns the master's node name in `out`. */
export async function converged (dep: Deployment, out: { master?: NodeName }): Promise<true | string> {
  const addrs = await Promise.all(SENTINEL_NODES.map(s => dep.call(s, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME])
    .then(r => String((r as unknown[])[0]), () => 'unreachable')))
  if (addrs.some(a => a !== addrs[0])) return `sentinels disagree: ${addrs.join(' ')}`
  const master = dep.nodeOf(addrs[0] ?? '')
  if (master === undefined) return `sentinels name ${addrs[0]}`
  out.master = master
  const mflags = flagsOf(await dep.call('s1', ['SENTINEL', 'MASTER', MASTER_NAME])).flags ?? ''
  if (/s_down|o_down|failover_in_progress/.test(mflags)) return `s1 master flags ${mflags}`
  const info = async (n: NodeName): Promise<Record<string, string>> => Object.fromEntries(
    String(await dep.call(n, ['INFO', 'replication'])).split('\r\n').map(l => l.split(':')).filter(p => p.length === 2) as Array<[string, string]>)
  const mi = await info(master)
  if (mi.role !== 'master') return `${master} reports role ${mi.role}`
  for (const r of REDIS_NODES.filter(n => n !== master)) {
    const ri = await info(r)
    if (ri.role !== 'slave' || ri.master_host !== dep.lab.ip(master)) return `${r} is ${ri.role} of ${ri.master_host}`
    if (ri.master_link_status !== 'up') return `${r} link ${ri.master_link_status}`
    if (ri.slave_repl_offset !== mi.master_repl_offset) return `${r} at offset ${ri.slave_repl_offset}, master at ${mi.master_repl_offset}`
  }
  return true
}

/** Which of `keys` each redis node holds with the right value (value = key). */
export async function keysOnNodes (dep: Deployment, keys: string[]): Promise<Map<NodeName, Set<string>>> {
  const out = new Map<NodeName, Set<string>>()
  for (const node of REDIS_NODES) {
    const c = dep.client(node)
    const present = new Set<string>()
    try {
      for (let i = 0; i < keys.length; i += 1000) {
        const batch = keys.slice(i, i + 1000)
        const values = batch.length === 0 ? [] : await c.mget(...batch)
        values.forEach((v, j) => { if (v === batch[j]) present.add(batch[j] as string) })
      }
    } finally {
      c.disconnect()
    }
    out.set(node, present)
  }
  return out
}
