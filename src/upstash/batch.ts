/**
 * What the read path (src/upstash/runner.ts) and the write path (src/upstash/write-runner.ts) of a
 * batch of client commands share: the batch's options and result, the retry and reply settings
 * they run with, and the clean-up after a fault on a sent batch. Kept apart so that neither path
 * imports the other's module.
 */
import type { Redis } from 'ioredis'
import type { Config, Durability } from '../config.js'
import type { Role } from '../kv-reads.js'
import type { ReplyLimits } from '../redis/command-batch.js'
import { RedisTimeoutError } from '../redis/faults.js'
import type { NodePool } from '../redis/connections.js'
import type { BackoffOptions } from '../retry.js'
import type { CommandReply } from './outcomes.js'

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

/** The client's commands, each its name and arguments. */
export type Cmds = ReadonlyArray<ReadonlyArray<string | Buffer>>
export type PipelineResult = Array<[Error | null, unknown]>

/** The backoff between attempts within REQUEST_RETRY_BUDGET_MS. */
export function backoffOf (config: Config): BackoffOptions {
  return { baseMs: config.retryBaseDelayMs, maxMs: config.retryMaxDelayMs }
}

/** The bounds of a reply the endpoint passes on (UPSTASH_MAX_REPLY_BYTES, UPSTASH_MAX_REPLY_DEPTH). */
export function replyLimitsOf (config: Config): ReplyLimits {
  return { maxBytes: config.upstashMaxReplyBytes, maxDepth: config.upstashMaxReplyDepth }
}

/** Scripts a timeout leaves running, and how to kill them. */
const KILL: Readonly<Record<string, readonly string[]>> = {
  EVAL: ['SCRIPT', 'KILL'], EVALSHA: ['SCRIPT', 'KILL'], EVAL_RO: ['SCRIPT', 'KILL'], EVALSHA_RO: ['SCRIPT', 'KILL'],
  FCALL: ['FUNCTION', 'KILL'], FCALL_RO: ['FUNCTION', 'KILL']
}

/**
 * After a fault on a sent batch: a timed-out connection is closed and replaced (what it waits
 * for may never end: BLOCK 0, a busy script), and a timed-out script is killed.
 */
export function abandon (pool: NodePool, client: Redis, cmds: Cmds, err: unknown, connectTimeoutMs: number): void {
  if (!(err instanceof RedisTimeoutError)) return
  pool.replaceCommandClient(client)
  const kills = new Set(cmds.map(([name]) => KILL[String(name).toUpperCase()]).filter(k => k !== undefined))
  if (kills.size === 0) return
  pool.control(connectTimeoutMs).then(async c => {
    for (const k of kills) await c.call(k[0]!, k[1]!).catch(() => { /* NOTBUSY: it ended; UNKILLABLE: it wrote */ })
  }, () => { /* no control connection: the sentinels' own SCRIPT KILL is left */ })
}
