/**
 * What a batch of client commands did, read from its answers: a node's refusal (nothing ran), a
 * fault after sending (may have run), a write's state, the per-command replies of a transaction.
 */
import { GatewayError } from '../errors.js'
import { ReplyRefusedError, type BatchResult } from '../redis/command-batch.js'
import { RedisTimeoutError } from '../redis/faults.js'

/** One command's answer: its Redis error, or its reply (Buffers, numbers, null, arrays). */
export type CommandReply = [Error | null, unknown]
type PipelineResult = BatchResult

/**
 * A transaction answered as a whole with one error (400): Redis refused it (EXECABORT: nothing of
 * it ran), or the gateway refused its reply (too deep, too large: it ran, its answer is withheld).
 */
export class TransactionAbortedError extends Error {
  constructor (message: string) { super(message); this.name = 'TransactionAbortedError' }
}

/**
 * Replies of a node that refused a command before running it: nothing was applied. MOVED, ASK and
 * CLUSTERDOWN (Redis Cluster): the slot is served elsewhere, or not now. (TRYAGAIN is Redis's
 * answer to the client: see src/redis/faults.ts.)
 */
export const REFUSED_REPLY = /^(READONLY|LOADING|MASTERDOWN|NOREPLICAS|BUSY|MOVED|ASK|CLUSTERDOWN)\b/
/** ioredis refusing to send (connection not writable, no offline queue): nothing was sent. */
export const NOT_SENT = /Stream isn't writeable|enableOfflineQueue/

/** A fault of a node after the batch was sent to it: the batch may have run, or be running still. */
export class SentFault extends Error {
  constructor (readonly node: string, override readonly cause: unknown) {
    super(`${node}: ${cause instanceof Error ? cause.message : String(cause)}`)
    this.name = 'SentFault'
  }
}

/**
 * Read-only script calls a replica may answer "not here" while the master has what they need:
 * EVALSHA_RO (Redis copies no script cache to replicas: a script loaded with SCRIPT LOAD on the
 * master, or run there by EVAL, is unknown to them) and FCALL_RO of a function the replica has
 * not received yet. Keyed by lower-case command name: the error that means "missing here".
 */
const MISSING_ON_REPLICA: ReadonlyMap<string, RegExp> = new Map([['evalsha_ro', /^NOSCRIPT\b/], ['fcall_ro', /^ERR Function not found/]])

/** A replica lacks a script or function the batch calls: the batch (read-only, safe to repeat) runs on the master. */
export class MissingOnReplica extends Error {
  constructor (readonly node: string) {
    super(`${node} lacks a script or function the read-only batch calls`)
    this.name = 'MissingOnReplica'
  }
}

/** True when a replica answered a read-only script call of `cmds` with "no such script/function". */
export function missingOnReplica (cmds: ReadonlyArray<ReadonlyArray<string | Buffer>>, out: PipelineResult): boolean {
  return out.some(([err], i) => {
    if (err === null || err.name !== 'ReplyError') return false
    return MISSING_ON_REPLICA.get(String(cmds[i]?.[0]).toLowerCase())?.test(err.message) === true
  })
}

/** True when nothing of the batch ran: refused by the node (LOADING, READONLY, BUSY...) or never written. */
export function isRefusal (err: unknown): boolean {
  return err instanceof Error && ((err.name === 'ReplyError' && REFUSED_REPLY.test(err.message)) || NOT_SENT.test(err.message))
}

/** What the client is told for a read that will not be sent elsewhere. */
export function final (err: unknown): unknown {
  if (!(err instanceof SentFault)) return err
  const what = err.cause instanceof RedisTimeoutError
    ? `the command did not complete within REDIS_COMMAND_TIMEOUT_MS on ${err.node}`
    : `the connection to ${err.node} failed while the command ran`
  return new GatewayError('GW_ERR_REDIS_UNAVAILABLE', `${what}; it was not sent to another node (a slow or failing command costs one node at most)`, { cause: err.cause, retryAfter: 1 })
}

/** The answers of the user's commands: as they are, or (transaction) the EXEC answer split per command. */
export function commandReplies (out: PipelineResult, transaction: boolean): CommandReply[] {
  if (!transaction) return out.map(([err, v]): CommandReply => [err, v])
  const [execErr, exec] = out[out.length - 1]!
  // The transaction ran; its answer was refused (too deep, too large).
  if (execErr instanceof ReplyRefusedError) throw new TransactionAbortedError(execErr.message)
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
export function writeState (out: PipelineResult, transaction: boolean, readOnly: readonly boolean[] | undefined): 'unknown' | 'refused' | 'nothing' | 'applied' {
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

/** A part's failure (a shard's, a redirect's) as its commands' error reply, in the endpoint's words (`CODE message`). */
export function partError (reason: unknown): Error {
  if (reason instanceof GatewayError) return new Error(reason.code === 'GW_ERR_INTERNAL' ? 'GW_ERR_INTERNAL internal error' : `${reason.code} ${reason.message}`)
  return reason instanceof Error ? reason : new Error(String(reason))
}

export function firstError (out: PipelineResult): Error | undefined {
  return out.find(([err]) => err !== null)?.[0] ?? undefined
}

export function outcomeUnknown (cause: unknown): GatewayError {
  return new GatewayError('GW_ERR_WRITE_OUTCOME_UNKNOWN',
    'the write may have been applied on the master but was not confirmed on the replicas in time: it may or may not persist; it was not repeated (Redis commands need not be idempotent)',
    { cause, retryAfter: 1 })
}
