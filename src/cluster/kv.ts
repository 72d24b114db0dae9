/**
 * The KV service in Cluster mode: each key goes to the shard serving its hash slot, where the
 * Sentinel-mode KV service (src/kv.ts) runs unchanged on that shard's view (src/cluster/shard.ts):
 * reads on a healthy replica of the shard (READONLY connections) with the shard master as
 * fallback, writes on the shard master acknowledged after `WAIT n` with n pinned per shard,
 * retried on the shard's new master after a cluster failover, 503/504 as in Sentinel mode.
 */
import calculateSlot from 'cluster-key-slot'
import type { Breakers } from '../breakers.js'
import type { Config, Durability } from '../config.js'
import { KvService, type DeleteResult, type PutOptions, type PutResult, type ReadCache, type ReadOptions, type ReadResult } from '../kv.js'
import type { Connections } from '../redis/connections.js'
import type { ReadRouter } from '../routing.js'
import type { Topology } from '../topology.js'
import { partError, type CommandReply } from '../upstash/outcomes.js'
import { UpstashHttpError } from '../upstash/protocol.js'
import type { CommandOptions, CommandsResult } from '../upstash/runner.js'
import { CROSSSLOT, refused, slotOf } from './commands.js'
import { SlotView, type Shard } from './shard.js'
import type { ClusterTopology } from './topology.js'

/** What the routes call on the KV service (both modes). */
export type KvApi = Pick<KvService, 'get' | 'put' | 'delete' | 'commands'>

/** The KV service of Cluster mode (routes call it as they call KvService). */
export class ClusterKvService implements KvApi {
  /**
   * One KV service per hash slot in use (created on first use, at most 16384), on a view that asks
   * which shard serves the slot at every step: a write retried after MOVED (its slot migrated)
   * goes to the slot's new shard, a write retried after a failover to the shard's new master.
   */
  private readonly services = new Map<number | null, KvService>()

  constructor (private readonly config: Config, private readonly topology: ClusterTopology,
    private readonly connections: Connections, private readonly breakers: Breakers, private readonly router: ReadRouter,
    private readonly near?: ReadCache) {}

  // The slot's service's own promise, not awaited again here: no second promise per request.
  get (key: string, opts: ReadOptions): Promise<ReadResult> { return this.of(key).get(key, opts) }

  put (key: string, value: Buffer, opts: PutOptions): Promise<PutResult> { return this.of(key).put(key, value, opts) }

  delete (key: string, opts: { durability?: Durability }): Promise<DeleteResult> { return this.of(key).delete(key, opts) }

  /**
   * The command endpoint (Upstash): each command on the shard serving its slot (CROSSSLOT for one
   * whose keys span slots). A transaction runs on one shard or not at all; a pipeline is split per
   * shard, the parts run in parallel, and each command answers its own result or error: a shard
   * that cannot serve its part answers that part's error, never the whole pipeline's.
   */
  async commands (cmds: ReadonlyArray<ReadonlyArray<string | Buffer>>, opts: CommandOptions): Promise<CommandsResult> {
    const slots = cmds.map(slotOf)
    if (opts.transaction === true) {
      const err = slots.find((s): s is Error => s instanceof Error)
      if (err !== undefined) throw new UpstashHttpError(400, err.message)
      const distinct = [...new Set(slots.filter((s): s is number => typeof s === 'number'))]
      if (distinct.length > 1) throw new UpstashHttpError(400, CROSSSLOT)
      return await this.on(distinct[0] ?? null).commands(cmds, opts)
    }
    const replies: CommandReply[] = slots.map(s => s instanceof Error ? refused(s) : [null, null])
    // Commands of one shard run together, on the view of the first slot among them.
    const groups = new Map<Shard, { slot: number | null; idx: number[] }>()
    for (const [i, s] of slots.entries()) {
      if (s instanceof Error) continue
      const shard = this.topology.shardForSlot(s)
      const g = groups.get(shard)
      if (g === undefined) groups.set(shard, { slot: s, idx: [i] })
      else g.idx.push(i)
    }
    if (groups.size === 0) return { replies, servedBy: 'master', node: '' }
    const parts = [...groups.values()]
    const one = parts.length === 1 && parts[0]!.idx.length === cmds.length
    const settled = await Promise.allSettled(parts.map(async ({ slot, idx }) => await this.on(slot).commands(idx.map(i => cmds[i]!), {
      ...opts,
      // A part holding only commands that change nothing needs no replica confirmation.
      route: opts.route === 'write' && idx.every(i => opts.readOnly?.[i] === true) ? 'master' : opts.route,
      ...(opts.readOnly === undefined ? {} : { readOnly: idx.map(i => opts.readOnly![i]!) })
    })))
    // One shard and every command runnable: exactly the Sentinel-mode answer (errors included).
    if (one) {
      const r = settled[0]!
      if (r.status === 'rejected') throw r.reason
      return r.value
    }
    let served: CommandsResult | undefined
    let replicas: number | undefined
    for (const [p, r] of settled.entries()) {
      const { idx } = parts[p]!
      if (r.status === 'rejected') {
        const err = partError(r.reason)
        for (const i of idx) replies[i] = [err, null]
        continue
      }
      r.value.replies.forEach((reply, k) => { replies[idx[k]!] = reply })
      if (served === undefined || r.value.servedBy === 'master') served = r.value
      if (r.value.replicas !== undefined) replicas = Math.min(replicas ?? Infinity, r.value.replicas)
    }
    // Replication offsets of different shards do not compare: no sync token for a split pipeline.
    return { replies, servedBy: served?.servedBy ?? 'master', node: served?.node ?? '', ...(replicas === undefined ? {} : { replicas }) }
  }

  private on (slot: number | null): KvService {
    let s = this.services.get(slot)
    if (s === undefined) {
      // The view offers everything KvService asks of a topology (KvTopology, checked in shard.ts);
      // KvService's constructor names the Sentinel-mode class, hence the cast.
      // The topology resolves ASK answers (a migrating slot) to the importing node's shard.
      s = new KvService(this.config, new SlotView(slot, this.topology) as unknown as Topology, this.connections, this.breakers, this.router, this.near, this.topology)
      this.services.set(slot, s)
    }
    return s
  }

  private of (key: string): KvService { return this.on(calculateSlot(key)) }
}
