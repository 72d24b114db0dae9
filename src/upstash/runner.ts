/**
 * Arbitrary Redis commands on the right node, with the KV service's machinery: the read router
 * (strategy, lag bound, breakers), the topology's writable master and pinned replica count, one
 * circuit breaker per node, retries with backoff inside REQUEST_RETRY_BUDGET_MS. Used through
 * KvService.commands by the Upstash endpoint.
 *
 * Routes (CommandRoute):
 * - `replica`: read-only; a healthy replica, else (or when it fails, is behind the sync token, or
 *   lacks a script EVALSHA_RO / FCALL_RO calls) the master; retried anywhere within the budget.
 * - `master`: the master, no replica confirmation, retried (commands that change no data: PING,
 *   SCAN cursors, OBJECT..., and read-only transactions).
 * - `write`: the master, confirmed with WAIT on the pinned replica count, sent again only while
 *   nothing of it can have applied (src/upstash/write-runner.ts).
 */
import type { Redis } from 'ioredis'
import type { Breakers } from '../breakers.js'
import { askedOf, askOf, type Redirects } from '../cluster/ask.js'
import type { Config } from '../config.js'
import { GatewayError, unavailable } from '../errors.js'
import type { Role } from '../kv-reads.js'
import { ReplyRefusedError, sendBatch } from '../redis/command-batch.js'
import { isNodeFault } from '../redis/faults.js'
import { nodeKey, type Connections, type NodeAddress } from '../redis/connections.js'
import type { ReadRouter } from '../routing.js'
import { backoffWithin } from '../retry.js'
import type { Topology } from '../topology.js'
import { abandon, backoffOf, replyLimitsOf, type Cmds, type CommandOptions, type CommandsResult, type PipelineResult } from './batch.js'
import { commandReplies, final, isRefusal, MissingOnReplica, missingOnReplica, SentFault, TransactionAbortedError, type CommandReply } from './outcomes.js'
import { WriteRunner } from './write-runner.js'

export { TransactionAbortedError, type CommandReply }
export type { CommandOptions, CommandRoute, CommandsResult } from './batch.js'

export class CommandRunner {
  /** The `write` route (src/upstash/write-runner.ts). */
  private readonly writes: WriteRunner

  constructor (private readonly config: Config, private readonly topology: Topology,
    private readonly connections: Connections, private readonly breakers: Breakers,
    private readonly router: ReadRouter, private readonly redirects?: Redirects) {
    this.writes = new WriteRunner(config, topology, connections, breakers, redirects)
  }

  async run (cmds: Cmds, opts: CommandOptions): Promise<CommandsResult> {
    if (cmds.length === 0) throw new TypeError('no command to run')
    if (opts.route === 'write') return await this.writes.write(cmds, opts)
    return await this.read(cmds, opts.route === 'replica' && opts.transaction !== true, opts)
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
          if (err instanceof TransactionAbortedError || err instanceof SentFault) throw final(err)
          lastErr = err
          break
        }
      }
      try {
        const master = await this.topology.writableMaster(deadline)
        const r = await this.readOn(master, 'master', cmds, opts)
        if (r !== null) return r
      } catch (err) {
        if (err instanceof GatewayError || err instanceof TransactionAbortedError || err instanceof SentFault) throw final(err)
        lastErr = err
        this.topology.requestRefresh()
      }
      if (!await backoffWithin(attempt, deadline, backoffOf(this.config))) throw unavailable('request', lastErr)
    }
  }

  /**
   * One attempt on one node; null for a replica behind the sync token. Throws the node's fault when
   * nothing ran (not sent, or refused: LOADING, READONLY, BUSY...), SentFault once it was sent.
   * Commands answered ASK (a migrating slot) run once more on the importing master (`asking`:
   * this attempt is that redirect, whose own ASK answers are not followed).
   */
  private async readOn (addr: NodeAddress, role: Role, cmds: Cmds, opts: CommandOptions, asking = false): Promise<CommandsResult | null> {
    const follow = !asking && this.redirects !== undefined
    const node = nodeKey(addr)
    const started = performance.now()
    const withRole = opts.syncToken !== undefined
    const pool = this.connections.get(addr)
    let client: Redis | undefined
    let out: PipelineResult
    try {
      out = await this.breakers.run(node, 'read', this.config.commandTimeoutMs, async () => {
        client = await pool.commands(this.config.connectTimeoutMs)
        const res = await sendBatch(client, cmds, opts.transaction === true, replyLimitsOf(this.config), { head: c => withRole ? [c.role()] : [], asking })
        // A node that cannot serve (LOADING, READONLY, connection lost...) fails the whole attempt.
        for (const [err] of res) if (err !== null && !(err instanceof ReplyRefusedError) && isNodeFault(err) && !(follow && askOf(err) !== null)) throw err
        return res
      })
    } catch (err) {
      if (client === undefined || isRefusal(err)) throw err
      abandon(pool, client, cmds, err, this.config.connectTimeoutMs)
      throw new SentFault(node, err)
    }
    this.router.observe(node, performance.now() - started)
    let syncToken: string | undefined
    if (withRole) {
      const [, answer] = out.shift()!
      const offset = Number((answer as unknown[])[role === 'master' ? 1 : 4])
      if (role === 'replica' && !(offset >= opts.syncToken!)) return null
      syncToken = String(offset)
    }
    // Repeating a read-only batch is safe: the master (which has every script run or loaded there) answers it.
    if (role === 'replica' && missingOnReplica(cmds, out)) throw new MissingOnReplica(node)
    const asked = follow ? askedOf(out, opts.transaction === true, this.redirects) : null
    if (asked !== null) {
      // A transaction answered ASK ran nothing (EXECABORT): all of it goes to the importing master.
      if (opts.transaction === true) return await this.readOn(asked.target.node, 'master', cmds, opts, true)
      const sub = await this.readOn(asked.target.node, 'master', asked.idx.map(i => cmds[i]!), opts, true)
      const replies = commandReplies(out, false)
      asked.idx.forEach((i, k) => { replies[i] = sub!.replies[k]! })
      return { replies, servedBy: role, node, ...(syncToken === undefined ? {} : { syncToken }) }
    }
    return { replies: commandReplies(out, opts.transaction === true), servedBy: role, node, ...(syncToken === undefined ? {} : { syncToken }) }
  }
}
