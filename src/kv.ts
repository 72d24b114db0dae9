/**
 * KV operations with master/replica routing, retries and replica-confirmed writes.
 *
 * Write path (PUT, DELETE), one attempt = one write on a write connection of the master, followed
 * on that connection by the ROLE and WAIT it shares with the writes sent together with it
 * (group commit, src/redis/group-commit.ts):
 *   EVALSHA|EVAL put-script|DEL [more writes]  ->  ROLE (the node must still call itself master)  ->  WAIT n timeout
 * where n is the topology's pinned replica count (never lowered because the master says a
 * replica left, only when the sentinels agree it is down). An attempt that is not confirmed by n
 * replicas is retried, within the request's budget, on the master the sentinels then name; one
 * answered NOSCRIPT wrote nothing and is sent again as EVAL, with a ROLE and WAIT of its own.
 * SET and DEL are idempotent; a create-only PUT recognises its own earlier attempt (see scripts.ts).
 */
import type { Redis } from 'ioredis'
import { pingsControl, type Breakers } from './breakers.js'
import type { Config, Durability } from './config.js'
import { GatewayError, unavailable } from './errors.js'
import { askingEach, type AskTarget, type Redirects } from './cluster/ask.js'
import { isNodeFault } from './redis/faults.js'
import { nextCheckPhase } from './next-check-phase.js'
import { GroupCommit } from './redis/group-commit.js'
import { isNoScript, PutScript } from './redis/scripts.js'
import { nodeKey, type Connections, type NodeAddress } from './redis/connections.js'
import type { ReadRouter } from './routing.js'
import { backoffWithin } from './retry.js'
import type { Topology } from './topology.js'
import { CommandRunner, type CommandOptions, type CommandsResult } from './upstash/runner.js'

import { NodeReads, readResult, userError, type ReadCache, type ReadOptions, type ReadResult } from './kv-reads.js'

export type { ReadCache, ReadOptions, ReadResult, Role } from './kv-reads.js'
export type Condition = 'none' | 'create-only' | 'replace-only' | { etag: string }
export interface PutOptions { ttlSeconds?: number; condition: Condition; durability?: Durability }
export interface WriteResult { syncToken: string; node: string; replicas: number }
export interface PutResult extends WriteResult { created: boolean }
export interface DeleteResult extends WriteResult { existed: boolean }

/** The master's answer did not prove the write is on the replicas it must reach. */
class NotConfirmedError extends Error {
  constructor (message: string) { super(message); this.name = 'NotConfirmedError' }
}

/** Sends one write command on `c` and returns its reply (`sentBefore`: an earlier attempt of this request was sent). */
type WriteCommand = (c: Redis, sentBefore: boolean) => Promise<unknown>

/**
 * Per-connection write state, shared by every KvService on the same connections: Cluster mode runs
 * one per hash slot (src/cluster/kv.ts), and writes of different slots sent on one connection to
 * their shard's master then share that connection's ROLE + WAIT, as all writes do in Sentinel mode.
 * Both are keyed by connection: a write is still confirmed only by the ROLE and WAIT sent after it
 * on its own connection.
 */
const perConnections = new WeakMap<Connections, { groups: GroupCommit; putScript: PutScript }>()

function connectionStateOf (connections: Connections): { groups: GroupCommit; putScript: PutScript } {
  let s = perConnections.get(connections)
  if (s === undefined) perConnections.set(connections, s = { groups: new GroupCommit(), putScript: new PutScript() })
  return s
}

export class KvService {
  /** Runs the Upstash endpoint's commands (created on first use). */
  private runner?: CommandRunner
  /** Concurrent writes on one connection share one ROLE + WAIT. */
  private readonly groups: GroupCommit
  /** PUT_SCRIPT by SHA where the server has it. */
  private readonly putScript: PutScript
  /** One read on one node. */
  private readonly reads: NodeReads

  constructor (private readonly config: Config, private readonly topology: Topology,
    private readonly connections: Connections, private readonly breakers: Breakers,
    private readonly router: ReadRouter, private readonly near?: ReadCache,
    /** Cluster mode: resolves ASK answers (a migrating slot), followed once to the importing node. */
    private readonly redirects?: Redirects) {
    ({ groups: this.groups, putScript: this.putScript } = connectionStateOf(connections))
    this.reads = new NodeReads(config, connections, breakers, router, near, redirects)
  }

  /**
   * GET: a replica by the read strategy, else (or on its failure) the master. A value larger than
   * KV_MAX_VALUE_BYTES (written around the gateway) is refused (413), never sent.
   */
  async get (key: string, opts: ReadOptions): Promise<ReadResult> {
    const r = await this.getAny(key, opts)
    if (r.value !== null && r.value.length > this.config.maxValueBytes) {
      throw new GatewayError('GW_ERR_VALUE_TOO_LARGE', `the stored value is ${r.value.length} bytes, larger than KV_MAX_VALUE_BYTES (${this.config.maxValueBytes}): it is not sent`)
    }
    return r
  }

  private async getAny (key: string, opts: ReadOptions): Promise<ReadResult> {
    if (this.near === undefined) return await this.read(key, opts, false)
    if (opts.consistency !== 'eventual' || opts.syncToken !== undefined) return withCache(await this.read(key, opts, false), 'bypass')
    const cache = this.near.cache
    // Before answering from memory, let the I/O already received be processed: an invalidation
    // that reached this process together with the request is applied first.
    if (cache.has(key)) await nextCheckPhase()
    const hit = cache.get(key)
    if (hit !== undefined) return readResult(hit, null, 'replica', hit.node, 'hit')
    return withCache(await this.read(key, opts, true), 'miss')
  }

  /** A read from Redis; `fill`: a replica's answer may be stored in the near-cache. */
  private async read (key: string, opts: ReadOptions, fill: boolean): Promise<ReadResult> {
    const deadline = Date.now() + this.config.retryBudgetMs
    let lastErr: unknown
    for (let attempt = 0; ; attempt++) {
      // Each round tries one replica, then the master; replicas that failed get another
      // chance in the next round (a failover drops their connections for a moment).
      if (opts.consistency === 'eventual') {
        const replica = this.router.pick(this.topology.snapshot.replicas)
        if (replica !== null) {
          try {
            const r = await this.reads.from(replica, 'replica', key, opts.syncToken, fill)
            if (r !== null) return r
          } catch (err) {
            if (!isNodeFault(err)) throw userError(err)
            lastErr = err
          }
        }
      }
      try {
        // A strong read needs the confirmed master (503 at once while its breaker is open);
        // an eventual read takes the master as one more copy, when it can answer. Its own ROLE is
        // read in the same refresh as its history (issue 11 req 3): a policy refusing strong reads
        // of a master whose lastFailover says acknowledgedWritesAtRisk belongs in writableMaster's
        // caller here (partition suite d: the remaining 404s of kept keys came from such a master).
        const master = opts.consistency === 'strong' ? await this.topology.writableMaster(deadline) : this.topology.snapshot.master
        if (master !== null && !this.breakers.isOpen(nodeKey(master))) {
          const r = await this.reads.master(master, key)
          if (r !== null) return r
        }
      } catch (err) {
        if (err instanceof GatewayError && opts.consistency === 'strong') throw err
        if (!isNodeFault(err)) throw userError(err)
        lastErr = err
        this.topology.requestRefresh()
      }
      if (!await backoffWithin(attempt, deadline, this.backoff)) throw unavailable('read', lastErr)
    }
  }

  async put (key: string, value: Buffer, opts: PutOptions): Promise<PutResult> {
    const c = opts.condition
    const cond = c === 'create-only' ? 'NX' : c === 'replace-only' ? 'XX' : c === 'none' ? '' : 'ETAG'
    const etag = typeof c === 'object' ? c.etag : ''
    const ttl = String(opts.ttlSeconds ?? 0)
    let known: number | null = null
    const r = await this.write(key, opts.durability, (c, sent) => this.putScript.send(c, key, [value, cond, ttl, sent ? '1' : '0', etag]),
      (reply) => {
        const n = Number(reply)
        if (n === -1) {
          if (known !== null) return known // our own earlier attempt applied; the key changed since
          throw new GatewayError('GW_ERR_PRECONDITION_FAILED', c === 'create-only'
            ? 'the key already exists (If-None-Match: *)'
            : c === 'replace-only' ? 'the key does not exist (If-Match: *)' : 'the value changed (If-Match ETag does not match)')
        }
        known ??= n
        return known
      })
    const { syncToken, node, replicas } = r.result
    // Field by field, not a spread (see readResult in src/kv-reads.ts).
    return { syncToken, node, replicas, created: r.outcome === 0 }
  }

  async delete (key: string, opts: { durability?: Durability }): Promise<DeleteResult> {
    let existed = false
    const r = await this.write(key, opts.durability, (c) => c.del(key), (reply) => {
      existed ||= Number(reply) > 0
      return existed ? 1 : 0
    })
    const { syncToken, node, replicas } = r.result
    return { syncToken, node, replicas, existed: r.outcome === 1 }
  }

  /**
   * Arbitrary Redis commands (the Upstash REST endpoint) with this service's routing, breakers,
   * retries and replica-confirmed writes: see src/upstash/runner.ts.
   */
  async commands (cmds: ReadonlyArray<ReadonlyArray<string | Buffer>>, opts: CommandOptions): Promise<CommandsResult> {
    this.runner ??= new CommandRunner(this.config, this.topology, this.connections, this.breakers, this.router, this.redirects)
    return await this.runner.run(cmds, opts)
  }

  private get backoff (): { baseMs: number; maxMs: number } {
    return { baseMs: this.config.retryBaseDelayMs, maxMs: this.config.retryMaxDelayMs }
  }

  /**
   * Runs one write until the master confirms it on the pinned number of replicas.
   * `command(client, sentBefore)` builds the pipeline holding the write; `interpret` reads its reply
   * (called on every attempt that got one; it may throw a user-facing error such as 412).
   */
  private async write (key: string, durability: Durability | undefined, command: WriteCommand,
    interpret: (reply: unknown) => number): Promise<{ outcome: number; result: WriteResult }> {
    // Our own readers see the write as soon as it is acknowledged, even before the replicas'
    // invalidation arrives (other gateways learn it from that invalidation).
    this.near?.cache.invalidate(key)
    try {
      return await this.writeAttempts(durability, command, interpret)
    } finally {
      this.near?.cache.invalidate(key)
    }
  }

  private async writeAttempts (durability: Durability | undefined, command: WriteCommand,
    interpret: (reply: unknown) => number): Promise<{ outcome: number; result: WriteResult }> {
    const mode = durability ?? this.config.durability
    const deadline = Date.now() + this.config.retryBudgetMs
    let sent = false
    let noScriptRetries = 0
    let lastErr: unknown
    // Once an attempt was sent, "nothing was written" can no longer be promised: every way out
    // other than success or the user's own outcome is then 504 outcome-unknown.
    const outcomeUnknown = (cause: unknown): GatewayError => new GatewayError('GW_ERR_WRITE_OUTCOME_UNKNOWN',
      'the write may have reached the master but was not confirmed on the replicas in time: it may or may not persist; retrying the same request is safe',
      { cause, retryAfter: 1 })
    let ask: AskTarget | null = null
    for (let attempt = 0; ; attempt++) {
      // After an ASK: this one attempt goes to the importing node, confirmed by ITS shard's replicas.
      const via: AskTarget | null = ask
      ask = null
      const view = via?.shard ?? this.topology
      const wasSent: boolean = sent
      let master: NodeAddress
      try {
        master = await view.writableMaster(deadline, mode)
      } catch (err) {
        throw sent ? outcomeUnknown(err) : err
      }
      const node = nodeKey(master)
      const n = view.waitCount(mode)
      try {
        const pool = this.connections.get(master)
        let conn: Redis | undefined
        // No per-call timer here: the write's group times it (one timer per group, group-commit.ts);
        // the connection wait is bounded by its own timeout.
        const res = await this.breakers.run(node, 'write', 0, async () => {
          const c = conn = await pool.writes(this.config.connectTimeoutMs)
          const sentBefore = sent
          sent = true
          const out = await this.groups.write(c, n, this.config.waitTimeoutMs, this.config.commandTimeoutMs + (n > 0 ? this.config.waitTimeoutMs : 0),
            `write on ${node}`, via === null ? (c) => command(c, sentBefore) : (c) => askingEach(c, [async () => await command(c, sentBefore)])[0]!)
          if (!Array.isArray(out.role) || out.role[0] !== 'master') {
            throw Object.assign(new Error(`READONLY ${node} no longer reports itself master`), { name: 'ReplyError' })
          }
          return out
        }, { alive: pingsControl(pool, this.config.connectTimeoutMs) }).catch((err: unknown) => {
          // The server lost the script (SCRIPT FLUSH, restart): this attempt wrote nothing; the next
          // one sends the script's text, with a ROLE and WAIT of its own.
          if (isNoScript(err) && conn !== undefined && noScriptRetries++ < 3) {
            this.putScript.forget(conn)
            return null
          }
          throw err
        })
        if (res === null) { attempt--; continue }
        const outcome = interpret(res.reply)
        const acked = n > 0 ? res.acked : 0
        if (acked < n) throw new NotConfirmedError(`write confirmed by ${acked} of ${n} replicas within ${this.config.waitTimeoutMs} ms`)
        // A node became promotable while this write was in flight: confirm again with it counted.
        if (!view.ackCovers(mode, n)) throw new NotConfirmedError(`the WAIT count grew from ${n} while the write was in flight`)
        const role = res.role as [string, number]
        view.noteAcknowledged(node, Number(role[1]))
        return { outcome, result: { syncToken: String(role[1]), node, replicas: acked } }
      } catch (err) {
        if (err instanceof GatewayError) {
          // The user's own outcome (412) stands; a refusal of the node (breaker open) after an
          // earlier attempt was sent does not mean nothing was written.
          if (sent && (err.code === 'GW_ERR_BREAKER_OPEN' || err.code === 'GW_ERR_REDIS_UNAVAILABLE')) throw outcomeUnknown(err)
          throw err
        }
        if (!(err instanceof NotConfirmedError) && !isNodeFault(err)) throw userError(err)
        // ASK: the old owner did not run it (so it counts as not sent); once, at once, to the importing node.
        ask = via === null ? this.redirects?.askTarget(err) ?? null : null
        if (ask !== null) { sent = wasSent; attempt--; continue }
        lastErr = err
        this.topology.requestRefresh()
      }
      if (!await backoffWithin(attempt, deadline, this.backoff)) {
        if (sent) throw outcomeUnknown(lastErr)
        throw unavailable('write', lastErr)
      }
    }
  }
}

/** `r` (a fresh result of one read, its `cache` field present) with its near-cache outcome. */
function withCache (r: ReadResult, cache: ReadResult['cache']): ReadResult {
  r.cache = cache
  return r
}
