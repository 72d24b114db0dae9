/**
 * Arbitrary Redis commands on the right node, with the KV service's machinery: the read router
 * (strategy, lag bound, breakers), the topology's writable master and pinned replica count, one
 * circuit breaker per node, retries with backoff inside REQUEST_RETRY_BUDGET_MS. Used through
 * KvService.commands by the Upstash endpoint.
 *
 * Routes (CommandRoute):
 * - `replica`: read-only; a healthy replica, else (or when it fails, or is behind the sync token)
 *   the master; retried anywhere within the budget.
 * - `master`: the master, no replica confirmation, retried (commands that change no data: PING,
 *   SCAN cursors, OBJECT..., and read-only transactions).
 * - `write`: the master, one round trip [MULTI] commands [EXEC] ROLE CLIENT-ID WAIT n, n the pinned
 *   replica count (as PUT /kv). Redis commands need not be idempotent (INCR, LPUSH...), so a write
 *   is sent again only while nothing of it can have applied: not sent, or every write refused by a
 *   node that cannot take writes now (READONLY, LOADING, MASTERDOWN...). Once applied, a missing
 *   confirmation is waited for again with WAIT on the same connection (WAIT counts that connection's
 *   own writes; CLIENT ID proves it is still the same one) while the budget lasts, then 504
 *   GW_ERR_WRITE_OUTCOME_UNKNOWN. A fault after sending (lost connection, timeout) is 504 at once.
 */
import type { ChainableCommander, Redis } from 'ioredis'
import type { Breakers } from '../breakers.js'
import type { Config, Durability } from '../config.js'
import { GatewayError, unavailable } from '../errors.js'
import type { Role } from '../kv.js'
import { isNodeFault } from '../redis/faults.js'
import { nodeKey, type Connections, type NodeAddress } from '../redis/connections.js'
import type { ReadRouter } from '../routing.js'
import { backoffWithin } from '../retry.js'
import type { Topology } from '../topology.js'

export type CommandRoute = 'replica' | 'master' | 'write'

export interface CommandOptions {
  route: CommandRoute
  /** Run inside MULTI/EXEC (never on a replica). */
  transaction?: boolean
  /** Read your writes: a replica answers only once its replication offset reached this. */
  syncToken?: number
  durability?: Durability
  /** Per command: true when it changes no data (a write attempt where only these ran applied nothing). */
  readOnly?: readonly boolean[]
}

/** One command's answer: its Redis error, or its reply (Buffers, numbers, null, arrays). */
export type CommandReply = [Error | null, unknown]

export interface CommandsResult {
  /** One per command (for a transaction: one per command of the EXEC answer). */
  replies: CommandReply[]
  servedBy: Role
  node: string
  /** Replication offset of the answering node (after the write, for writes); set for writes and whenever a sync token was given. */
  syncToken?: string
  /** Replicas that confirmed a write. */
  replicas?: number
}

/** A transaction Redis refused as a whole (EXECABORT): nothing of it ran. */
export class TransactionAbortedError extends Error {
  constructor (message: string) { super(message); this.name = 'TransactionAbortedError' }
}

type Cmds = ReadonlyArray<ReadonlyArray<string | Buffer>>
type PipelineResult = Array<[Error | null, unknown]>

/** Replies of a node that refused a command before running it: nothing was applied. */
const REFUSED_REPLY = /^(READONLY|LOADING|MASTERDOWN|NOREPLICAS|TRYAGAIN|BUSY)\b/
/** ioredis refusing to send (connection not writable, no offline queue): nothing was sent. */
const NOT_SENT = /Stream isn't writeable|enableOfflineQueue/

export class CommandRunner {
  constructor (private readonly config: Config, private readonly topology: Topology,
    private readonly connections: Connections, private readonly breakers: Breakers,
    private readonly router: ReadRouter) {}

  async run (cmds: Cmds, opts: CommandOptions): Promise<CommandsResult> {
    if (cmds.length === 0) throw new TypeError('no command to run')
    if (opts.route === 'write') return await this.write(cmds, opts)
    return await this.read(cmds, opts.route === 'replica' && opts.transaction !== true, opts)
  }

  private get backoff (): { baseMs: number; maxMs: number } {
    return { baseMs: this.config.retryBaseDelayMs, maxMs: this.config.retryMaxDelayMs }
  }

  private async read (cmds: Cmds, onReplica: boolean, opts: CommandOptions): Promise<CommandsResult> {
    const deadline = Date.now() + this.config.retryBudgetMs
    const skip = new Set<string>()
    let lastErr: unknown
    for (let attempt = 0; ; attempt++) {
      // Replicas behind the sync token are passed over at once; a failing one sends this attempt to the master.
      while (onReplica) {
        const replica = this.router.pick(this.topology.snapshot.replicas.filter(r => !skip.has(r.key)))
        if (replica === null) break
        skip.add(replica.key)
        try {
          const r = await this.readOn(replica, 'replica', cmds, opts)
          if (r !== null) return r
        } catch (err) {
          if (err instanceof TransactionAbortedError) throw err
          lastErr = err
          break
        }
      }
      try {
        const master = await this.topology.writableMaster(deadline)
        const r = await this.readOn(master, 'master', cmds, opts)
        if (r !== null) return r
      } catch (err) {
        if (err instanceof GatewayError || err instanceof TransactionAbortedError) throw err
        lastErr = err
        this.topology.requestRefresh()
      }
      if (!await backoffWithin(attempt, deadline, this.backoff)) throw unavailable('request', lastErr)
    }
  }

  /** One attempt on one node; null for a replica behind the sync token. Throws on a fault of the node. */
  private async readOn (addr: NodeAddress, role: Role, cmds: Cmds, opts: CommandOptions): Promise<CommandsResult | null> {
    const node = nodeKey(addr)
    const started = performance.now()
    const withRole = opts.syncToken !== undefined
    const out = await this.breakers.run(node, 'read', this.config.commandTimeoutMs, async () => {
      const p = (await this.connections.get(addr).acquire(this.config.connectTimeoutMs)).pipeline()
      if (withRole) p.role()
      queueCommands(p, cmds, opts.transaction === true)
      const res = await p.exec() as PipelineResult
      // A node that cannot serve (LOADING, READONLY, connection lost...) fails the whole attempt.
      for (const [err] of res) if (err !== null && isNodeFault(err)) throw err
      return res
    })
    this.router.observe(node, performance.now() - started)
    let syncToken: string | undefined
    if (withRole) {
      const [, answer] = out.shift()!
      const offset = Number((answer as unknown[])[role === 'master' ? 1 : 4])
      if (role === 'replica' && !(offset >= opts.syncToken!)) return null
      syncToken = String(offset)
    }
    return { replies: commandReplies(out, opts.transaction === true), servedBy: role, node, ...(syncToken === undefined ? {} : { syncToken }) }
  }

  private async write (cmds: Cmds, opts: CommandOptions): Promise<CommandsResult> {
    const replicated = (opts.durability ?? this.config.durability) === 'replicated'
    const transaction = opts.transaction === true
    const deadline = Date.now() + this.config.retryBudgetMs
    let lastErr: unknown
    for (let attempt = 0; ; attempt++) {
      // 503 (nothing sent) when no confirmed master within the budget, or its breaker is open.
      const master = await this.topology.writableMaster(deadline)
      const node = nodeKey(master)
      const n = replicated ? this.topology.snapshot.requiredReplicas : 0
      let sent = false
      let client: Redis | undefined
      let out: PipelineResult
      try {
        out = await this.breakers.run(node, 'write', this.config.commandTimeoutMs + (n > 0 ? this.config.waitTimeoutMs : 0), async () => {
          client = await this.connections.get(master).acquire(this.config.connectTimeoutMs)
          const p = client.pipeline()
          queueCommands(p, cmds, transaction)
          p.role()
          p.call('CLIENT', 'ID')
          if (n > 0) p.wait(n, this.config.waitTimeoutMs)
          sent = true
          return await p.exec() as PipelineResult
        })
      } catch (err) {
        if (!sent && err instanceof GatewayError) throw err
        if (sent && !(err instanceof Error && NOT_SENT.test(err.message))) throw outcomeUnknown(err)
        // Not sent: nothing applied, try again (on the master the sentinels then name).
        lastErr = err
        this.topology.requestRefresh()
        if (!await backoffWithin(attempt, deadline, this.backoff)) throw unavailable('write', lastErr)
        continue
      }

      const userPart = out.slice(0, out.length - (n > 0 ? 3 : 2))
      const [roleErr, role] = out[userPart.length]!
      const [, clientId] = out[userPart.length + 1]!
      const state = writeState(userPart, transaction, opts.readOnly)
      if (state === 'unknown') throw outcomeUnknown(firstError(userPart))
      if (state === 'refused') {
        // Every write was refused by a node that cannot take writes: nothing applied, try again.
        lastErr = firstError(userPart)
        this.topology.requestRefresh()
        if (!await backoffWithin(attempt, deadline, this.backoff)) throw unavailable('write', lastErr)
        continue
      }
      const isMaster = roleErr === null && Array.isArray(role) && role[0] === 'master'
      // Throws TransactionAbortedError for a transaction Redis refused (nothing ran).
      const replies = commandReplies(userPart, transaction)
      if (state === 'nothing') {
        // Only Redis errors (wrong arguments, WRONGTYPE...): nothing applied, nothing to confirm.
        return { replies, servedBy: 'master', node, ...(isMaster ? { syncToken: String(role[1]) } : {}), replicas: 0 }
      }
      // Applied on a node that no longer calls itself master: its resync will discard it.
      if (!isMaster) throw outcomeUnknown(roleErr ?? new Error(`${node} no longer reports itself master`))
      const acked = n > 0 ? Number(out[userPart.length + 2]![1]) : 0
      if (acked >= n) return { replies, servedBy: 'master', node, syncToken: String(role[1]), replicas: acked }
      const confirmed = await this.confirm(node, client!, clientId, acked, deadline)
      return { replies, servedBy: 'master', node, ...confirmed }
    }
  }

  /**
   * An applied write short of replica confirmations: WAIT again on the connection that wrote it
   * (counting the pinned replicas as the topology has them now) until confirmed, the master
   * changes, or the budget runs out (504).
   */
  private async confirm (node: string, client: Redis, clientId: unknown, acked: number, deadline: number): Promise<{ syncToken: string; replicas: number }> {
    let lastErr: unknown = new Error(`write confirmed by ${acked} replicas`)
    for (;;) {
      const s = this.topology.snapshot
      if (s.master === null || nodeKey(s.master) !== node) throw outcomeUnknown(new Error(`the master changed from ${node} before the write was confirmed`))
      const n = s.requiredReplicas
      const left = deadline - Date.now()
      if (left <= 0) throw outcomeUnknown(lastErr)
      try {
        const res = await this.breakers.run(node, 'write', this.config.commandTimeoutMs + this.config.waitTimeoutMs, async () => {
          const p = client.pipeline()
          p.call('CLIENT', 'ID')
          p.role()
          p.wait(n, Math.max(1, Math.min(this.config.waitTimeoutMs, left)))
          return await p.exec() as PipelineResult
        })
        for (const [err] of res) if (err !== null) throw err
        // A reconnected connection has no write of its own: its WAIT would prove nothing.
        if (res[0]![1] !== clientId) throw new Error('the connection that wrote was replaced')
        const role = res[1]![1] as [string, number]
        if (role[0] !== 'master') throw new Error(`${node} no longer reports itself master`)
        acked = Number(res[2]![1])
        if (acked >= n) return { syncToken: String(role[1]), replicas: acked }
        lastErr = new Error(`write confirmed by ${acked} of ${n} replicas`)
      } catch (err) {
        throw outcomeUnknown(err)
      }
    }
  }
}

/** Appends `cmds` to a pipeline (wrapped in MULTI/EXEC for a transaction), raw: no ioredis reply transformation. */
function queueCommands (p: ChainableCommander, cmds: Cmds, transaction: boolean): void {
  if (transaction) p.callBuffer('MULTI')
  // Upper-case names: ioredis keys its reply transformers (HGETALL -> object) by lower-case name.
  for (const [name, ...args] of cmds) p.callBuffer(String(name).toUpperCase(), ...args)
  if (transaction) p.callBuffer('EXEC')
}

/** The answers of the user's commands: as they are, or (transaction) the EXEC answer split per command. */
function commandReplies (out: PipelineResult, transaction: boolean): CommandReply[] {
  if (!transaction) return out.map(([err, v]): CommandReply => [err, v])
  const [execErr, exec] = out[out.length - 1]!
  if (execErr !== null) {
    const cause = out.slice(1, -1).find(([err]) => err !== null)?.[0]
    throw new TransactionAbortedError(cause == null ? execErr.message : `${execErr.message} ${cause.message}`)
  }
  if (!Array.isArray(exec)) throw new TransactionAbortedError('EXECABORT the transaction was not executed')
  return exec.map((v: unknown): CommandReply => v instanceof Error ? [v, null] : [null, v])
}

/**
 * What a write attempt did, from the replies of the user's commands:
 * `unknown` (a connection fault after sending: may have applied), `refused` (every write refused
 * by a node that cannot take writes now, or not sent: safe to send again), `nothing` (only Redis
 * errors: nothing applied, nothing to confirm), `applied`.
 */
function writeState (out: PipelineResult, transaction: boolean, readOnly: readonly boolean[] | undefined): 'unknown' | 'refused' | 'nothing' | 'applied' {
  const refused = (err: Error): boolean => (err.name === 'ReplyError' && REFUSED_REPLY.test(err.message)) || NOT_SENT.test(err.message)
  if (out.some(([err]) => err !== null && err.name !== 'ReplyError' && !NOT_SENT.test(err.message))) return 'unknown'
  if (transaction) {
    const [execErr] = out[out.length - 1]!
    if (execErr === null) return 'applied'
    return refused(execErr) || out.slice(1, -1).some(([err]) => err !== null && refused(err)) ? 'refused' : 'nothing'
  }
  let applied = false
  let wasRefused = false
  out.forEach(([err], i) => {
    if (readOnly?.[i] === true) return
    if (err === null) applied = true
    else if (refused(err)) wasRefused = true
    // A script that failed may have written before its error (its errors name the script).
    else if (/script/i.test(err.message)) applied = true
  })
  return applied ? 'applied' : wasRefused ? 'refused' : 'nothing'
}

function firstError (out: PipelineResult): Error | undefined {
  return out.find(([err]) => err !== null)?.[0] ?? undefined
}

function outcomeUnknown (cause: unknown): GatewayError {
  return new GatewayError('GW_ERR_WRITE_OUTCOME_UNKNOWN',
    'the write may have been applied on the master but was not confirmed on the replicas in time: it may or may not persist; it was not repeated (Redis commands need not be idempotent)',
    { cause, retryAfter: 1 })
}
