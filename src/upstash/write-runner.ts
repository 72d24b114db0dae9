/**
 * The `write` route of CommandRunner (src/upstash/runner.ts): the master, one round trip [MULTI]
 * commands [EXEC] ROLE CLIENT-ID WAIT n, n the pinned replica count (as PUT /kv). Redis commands
 * need not be idempotent (INCR, LPUSH...), so a write is sent again only while nothing of it can
 * have applied: not sent, or every write refused by a node that cannot take writes now (READONLY,
 * LOADING, MASTERDOWN...). Once applied, a missing confirmation is waited for again with WAIT on
 * the same connection (WAIT counts that connection's own writes; CLIENT ID proves it is still the
 * same one) while the budget lasts, then 504 GW_ERR_WRITE_OUTCOME_UNKNOWN. A fault after sending
 * (lost connection, timeout) is 504 at once.
 */
import type { Redis } from 'ioredis'
import { pingsControl, type Breakers } from '../breakers.js'
import { askedOf, type Asked, type AskTarget, type Redirects } from '../cluster/ask.js'
import type { KvTopology } from '../cluster/shard.js'
import type { Config, Durability } from '../config.js'
import { GatewayError, unavailable } from '../errors.js'
import { hasRefusedReply, sendBatch } from '../redis/command-batch.js'
import { nodeKey, type Connections } from '../redis/connections.js'
import { backoffWithin } from '../retry.js'
import type { Topology } from '../topology.js'
import { abandon, backoffOf, replyLimitsOf, type Cmds, type CommandOptions, type CommandsResult, type PipelineResult } from './batch.js'
import { commandReplies, firstError, outcomeUnknown, partError, writeState } from './outcomes.js'

/** Writes of client commands, each confirmed on the replicas its topology (or ASK's shard) pins. */
export class WriteRunner {
  constructor (private readonly config: Config, private readonly topology: Topology,
    private readonly connections: Connections, private readonly breakers: Breakers,
    private readonly redirects?: Redirects) {}

  /**
   * A write, then (Cluster mode) the commands its node answered ASK, once on the importing master
   * with a confirmation of their own (they did not run on the old owner: sending them once is safe).
   */
  async write (cmds: Cmds, opts: CommandOptions, via: AskTarget | null = null, deadline = Date.now() + this.config.retryBudgetMs): Promise<CommandsResult> {
    const { result, asked } = await this.writeAttempts(cmds, opts, via, deadline)
    if (asked === null) return result
    const part = this.write(asked.idx.map(i => cmds[i]!), { ...opts, ...(opts.readOnly === undefined ? {} : { readOnly: asked.idx.map(i => opts.readOnly![i]!) }) }, asked.target, deadline)
    if (asked.idx.length === cmds.length) return await part
    // The rest ran (and may be acknowledged): a failure of this part answers its own commands only.
    const sub = await part.catch((err: unknown): CommandsResult => ({ replies: asked.idx.map(() => [partError(err), null]), servedBy: 'master', node: '', replicas: 0 }))
    const replies = [...result.replies]
    asked.idx.forEach((i, k) => { replies[i] = sub.replies[k]! })
    // Two nodes wrote: their replication offsets do not compare, no sync token.
    return { replies, servedBy: 'master', node: result.node, replicas: Math.min(result.replicas ?? 0, sub.replicas ?? 0) }
  }

  /**
   * The attempts of one write (`via`: the first goes to an ASK's importing node, with ASKING). A
   * transaction answered ASK goes there whole at once; other commands answered ASK are returned
   * in `asked` (their answers stand in `result` until write() replaces them).
   */
  private async writeAttempts (cmds: Cmds, opts: CommandOptions, first: AskTarget | null, deadline: number): Promise<{ result: CommandsResult; asked: Asked | null }> {
    const mode = opts.durability ?? this.config.durability
    const transaction = opts.transaction === true
    let lastErr: unknown
    let next = first
    for (let attempt = 0; ; attempt++) {
      const via = next
      next = null
      const view: KvTopology = via?.shard ?? this.topology
      // 503 (nothing sent) when no confirmed master within the budget, or its breaker is open.
      const master = await view.writableMaster(deadline, mode)
      const node = nodeKey(master)
      const n = view.waitCount(mode)
      const pool = this.connections.get(master)
      let client: Redis | undefined
      let out: PipelineResult
      try {
        out = await this.breakers.run(node, 'write', this.config.commandTimeoutMs + (n > 0 ? this.config.waitTimeoutMs : 0), async () => {
          client = await pool.commands(this.config.connectTimeoutMs)
          return await sendBatch(client, cmds, transaction, replyLimitsOf(this.config), {
            tail: c => [c.role(), c.call('CLIENT', 'ID'), ...(n > 0 ? [c.wait(n, this.config.waitTimeoutMs)] : [])],
            asking: via !== null
          })
        }, { alive: pingsControl(pool, this.config.connectTimeoutMs) })
      } catch (err) {
        if (client === undefined && err instanceof GatewayError) throw err
        if (client !== undefined) {
          abandon(pool, client, cmds, err, this.config.connectTimeoutMs)
          throw outcomeUnknown(err)
        }
        // Not sent: nothing applied, try again (on the master the sentinels then name).
        lastErr = err
        view.requestRefresh()
        if (!await backoffWithin(attempt, deadline, backoffOf(this.config))) throw unavailable('write', lastErr)
        continue
      }

      const userPart = out.slice(0, out.length - (n > 0 ? 3 : 2))
      // ASK (a migrating slot): those commands did not run here. Not followed from a redirect.
      const asked = via === null ? askedOf(userPart, transaction, this.redirects) : null
      if (asked !== null && transaction) { next = asked.target; attempt--; continue }
      const done = (result: CommandsResult): { result: CommandsResult; asked: Asked | null } => ({ result, asked })
      // A reply too deep or too large: the commands ran, their answers are refused, and the
      // connection closed with them cannot confirm anything.
      if (hasRefusedReply(userPart)) return done({ replies: commandReplies(userPart, transaction), servedBy: 'master', node, replicas: 0 })
      const [roleErr, role] = out[userPart.length]!
      const [, clientId] = out[userPart.length + 1]!
      const state = writeState(userPart, transaction, asked === null ? opts.readOnly : cmds.map((_, i) => opts.readOnly?.[i] === true || asked.idx.includes(i)))
      if (state === 'unknown') throw outcomeUnknown(firstError(userPart))
      if (state === 'refused') {
        // Every write was refused by a node that cannot take writes: nothing applied, try again.
        lastErr = firstError(userPart)
        view.requestRefresh()
        if (!await backoffWithin(attempt, deadline, backoffOf(this.config))) throw unavailable('write', lastErr)
        continue
      }
      const isMaster = roleErr === null && Array.isArray(role) && role[0] === 'master'
      // Throws TransactionAbortedError for a transaction Redis refused (nothing ran) or whose reply was refused.
      const replies = commandReplies(userPart, transaction)
      if (state === 'nothing') {
        // Only Redis errors (wrong arguments, WRONGTYPE...): nothing applied, nothing to confirm.
        return done({ replies, servedBy: 'master', node, ...(isMaster ? { syncToken: String(role[1]) } : {}), replicas: 0 })
      }
      // Applied on a node that no longer calls itself master: its resync will discard it.
      if (!isMaster) throw outcomeUnknown(roleErr ?? new Error(`${node} no longer reports itself master`))
      const acked = n > 0 ? Number(out[userPart.length + 2]![1]) : 0
      if (acked >= n && view.ackCovers(mode, n)) {
        view.noteAcknowledged(node, Number(role[1]))
        return done({ replies, servedBy: 'master', node, syncToken: String(role[1]), replicas: acked })
      }
      const confirmed = await this.confirm(view, node, client!, clientId, acked, deadline, mode)
      return done({ replies, servedBy: 'master', node, ...confirmed })
    }
  }

  /**
   * An applied write short of replica confirmations: WAIT again on the connection that wrote it
   * (counting the pinned replicas as the topology has them now) until confirmed, the master
   * changes, or the budget runs out (504).
   */
  private async confirm (view: KvTopology, node: string, client: Redis, clientId: unknown, acked: number, deadline: number, mode: Durability): Promise<{ syncToken: string; replicas: number }> {
    let lastErr: unknown = new Error(`write confirmed by ${acked} replicas`)
    for (;;) {
      const s = view.snapshot
      if (s.master === null || nodeKey(s.master) !== node) throw outcomeUnknown(new Error(`the master changed from ${node} before the write was confirmed`))
      const n = view.waitCount(mode)
      const left = deadline - Date.now()
      if (left <= 0) throw outcomeUnknown(lastErr)
      try {
        const res = await this.breakers.run(node, 'write', this.config.commandTimeoutMs + this.config.waitTimeoutMs, async () => {
          const p = client.pipeline()
          p.call('CLIENT', 'ID')
          p.role()
          p.wait(n, Math.max(1, Math.min(this.config.waitTimeoutMs, left)))
          return await p.exec() as PipelineResult
        }, { alive: pingsControl(this.connections.get(s.master), this.config.connectTimeoutMs) })
        for (const [err] of res) if (err !== null) throw err
        // A reconnected connection has no write of its own: its WAIT would prove nothing.
        if (res[0]![1] !== clientId) throw new Error('the connection that wrote was replaced')
        const role = res[1]![1] as [string, number]
        if (role[0] !== 'master') throw new Error(`${node} no longer reports itself master`)
        acked = Number(res[2]![1])
        if (acked >= n && view.ackCovers(mode, n)) {
          view.noteAcknowledged(node, Number(role[1]))
          return { syncToken: String(role[1]), replicas: acked }
        }
        lastErr = new Error(`write confirmed by ${acked} of ${n} replicas`)
        // Confirmed, but the count may have grown meanwhile: wait for the current view, then again.
        if (acked >= n) await view.changedOrTimeout(Math.min(100, Math.max(1, deadline - Date.now())))
      } catch (err) {
        throw outcomeUnknown(err)
      }
    }
  }
}
