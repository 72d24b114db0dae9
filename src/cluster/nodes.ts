/**
 * The cluster's own account of itself (CLUSTER NODES), parsed into shards: one master serving
 * slot ranges and the replicas that follow it. Pure functions, no I/O.
 */
import type { NodeAddress } from '../redis/connections.js'

/** Hash slots of a Redis Cluster. */
export const SLOTS = 16384

/** One line of CLUSTER NODES. */
export interface ClusterNode extends NodeAddress {
  id: string
  role: 'master' | 'replica'
  /** The master this replica follows (null for a master). */
  masterId: string | null
  /** Flagged `fail` (agreed by the majority of masters) by the answering node. */
  failed: boolean
  /** Flagged `fail?` (this node alone suspects it) or `noaddr`/`handshake`. */
  suspected: boolean
  /** Config epoch: the master with the highest one owns a contested slot. */
  epoch: number
  /** Served slot ranges, inclusive (masters only; migrating/importing markers skipped). */
  slots: Array<[number, number]>
  /** Slots it is migrating away (`[slot->-id]`: a node lists them on its own line only). */
  migrating: number[]
}

/** One master and the replicas following it. */
export interface ShardNodes { master: ClusterNode; replicas: ClusterNode[] }

/** Parses the text of CLUSTER NODES. Lines it cannot read are skipped. */
export function parseClusterNodes (text: string): ClusterNode[] {
  const out: ClusterNode[] = []
  for (const line of text.split(/\r?\n/)) {
    const f = line.trim().split(' ')
    if (f.length < 8) continue
    // ip:port@cport[,hostname]; an empty ip (`:0@0`) is a node whose address is not known yet.
    const m = /^(.*):(\d+)@\d+/.exec(f[1]!)
    if (m === null || m[1] === '' || m[2] === '0') continue
    const flags = f[2]!.split(',')
    const slots: Array<[number, number]> = []
    const migrating: number[] = []
    for (const s of f.slice(8)) {
      const m = /^\[(\d+)->-/.exec(s)
      if (m !== null) migrating.push(Number(m[1]))
      if (s.startsWith('[')) continue
      const [a, b] = s.split('-').map(Number)
      if (Number.isInteger(a)) slots.push([a!, Number.isInteger(b) ? b! : a!])
    }
    out.push({
      id: f[0]!,
      host: m[1]!,
      port: Number(m[2]),
      role: flags.includes('master') ? 'master' : 'replica',
      masterId: f[3] === '-' ? null : f[3]!,
      failed: flags.includes('fail'),
      suspected: flags.includes('fail?') || flags.includes('noaddr') || flags.includes('handshake'),
      epoch: Number(f[6]),
      slots,
      migrating
    })
  }
  return out
}

/**
 * Shards: every master, with the replicas following it, by first slot served. A master serving no
 * slot is a shard too (a new empty node added to scale out: an ASK during its first slot's import
 * sends writes there), listed last by node id; unless the cluster flags it failing: a failed master
 * that lost its slots (its replica took over) is no shard, and shows up again as a replica once back.
 */
export function shardsOf (nodes: readonly ClusterNode[]): ShardNodes[] {
  return nodes
    .filter(n => n.role === 'master' && (n.slots.length > 0 || (!n.failed && !n.suspected)))
    .map(master => ({ master, replicas: nodes.filter(n => n.role === 'replica' && n.masterId === master.id) }))
    .sort((a, b) => firstSlot(a) - firstSlot(b) || (a.master.id < b.master.id ? -1 : a.master.id > b.master.id ? 1 : 0))
}

/** The shard's first slot; SLOTS (after every slot) for a master serving none. */
const firstSlot = (s: ShardNodes): number => s.master.slots[0]?.[0] ?? SLOTS

/** For each slot, the index in `shards` of the shard serving it (-1: none). */
export function slotTable (shards: readonly ShardNodes[]): Int16Array {
  const table = new Int16Array(SLOTS).fill(-1)
  shards.forEach((s, i) => { for (const [a, b] of s.master.slots) table.fill(i, a, b + 1) })
  return table
}

/** "0-5460,10923" as /topology shows slot ranges. */
export const rangesText = (slots: ReadonlyArray<[number, number]>): string[] => slots.map(([a, b]) => a === b ? String(a) : `${a}-${b}`)
