/**
 * Sends a batch of client commands on one connection in one write, and bounds what comes back:
 * a reply nested deeper than `maxDepth` answers an error instead of itself; once the batch's
 * replies together pass `maxBytes`, the connection is closed (the rest never fills memory) and the
 * replies not yet received answer an error. A connection the reply guard closed (a reply too deep
 * for the parser, or one reply alone too large) answers the same errors: see reply-guard.ts.
 *
 * These errors are the command's own answer, not a fault of the node: the same reply would hurt a
 * connection to any other node, so the caller never sends the batch elsewhere.
 */
import type { Redis } from 'ioredis'
import { corked } from './connections.js'
import { closeForReply, guardReason, type GuardReason } from './reply-guard.js'

export type Cmds = ReadonlyArray<ReadonlyArray<string | Buffer>>
/** One answer per command sent: its error, or its reply. */
export type BatchResult = Array<[Error | null, unknown]>

export const REPLY_TOO_DEEP = 'ERR the reply is nested deeper than UPSTASH_MAX_REPLY_DEPTH'
export const REPLY_TOO_LARGE = 'ERR the reply is larger than UPSTASH_MAX_REPLY_BYTES'
const REPLY_UNREADABLE = 'ERR the reply could not be read'

/** A reply the gateway refused to pass on (too deep, too large). The command did run. */
export class ReplyRefusedError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ReplyRefusedError'
  }
}

export interface ReplyLimits { maxBytes: number; maxDepth: number }

const MESSAGES: Record<GuardReason, string> = { depth: REPLY_TOO_DEEP, bytes: REPLY_TOO_LARGE, unreadable: REPLY_UNREADABLE }

/** The gateway's own commands around the user's (e.g. ROLE before, ROLE and WAIT after). */
export interface Around {
  head?: (c: Redis) => Array<Promise<unknown>>
  tail?: (c: Redis) => Array<Promise<unknown>>
  /**
   * ASKING before each user command (Redis Cluster's ASK redirect; it lasts one command), once
   * before MULTI for a transaction (it lasts until EXEC). Its own answers are not in the result.
   */
  asking?: boolean
}

/**
 * Sends `around.head`'s commands, `cmds` (in MULTI/EXEC for a transaction), then `around.tail`'s,
 * all in one socket write. Answers one entry per command, head and tail included; only the user's
 * replies are bounded. Never rejects.
 */
export async function sendBatch (c: Redis, cmds: Cmds, transaction: boolean, limits: ReplyLimits, around: Around = {}): Promise<BatchResult> {
  const stream = c.stream
  let total = 0
  const bounded = (v: unknown): unknown => {
    const bytes = measure(v, limits.maxDepth, 0)
    if (bytes < 0) throw new ReplyRefusedError(REPLY_TOO_DEEP)
    total += bytes
    if (total > limits.maxBytes) {
      closeForReply(c, 'bytes')
      throw new ReplyRefusedError(REPLY_TOO_LARGE)
    }
    return v
  }
  const sent = corked(c, () => {
    const head = around.head?.(c) ?? []
    const user: Array<Promise<unknown>> = []
    const asking = (): void => { if (around.asking === true) c.asking().catch(() => { /* the command's own answer tells */ }) }
    if (transaction) { asking(); user.push(c.callBuffer('MULTI')) }
    // Upper-case names: ioredis keys its reply transformers (HGETALL -> object) by lower-case name.
    for (const [name, ...args] of cmds) {
      if (!transaction) asking()
      user.push(c.callBuffer(String(name).toUpperCase(), ...args))
    }
    if (transaction) user.push(c.callBuffer('EXEC'))
    return [...head, ...user.map(p => p.then(bounded)), ...(around.tail?.(c) ?? [])]
  })
  return await Promise.all(sent.map(async (p): Promise<[Error | null, unknown]> => {
    try {
      return [null, await p]
    } catch (err) {
      const reason = guardReason(stream)
      if (reason !== undefined && !(err instanceof ReplyRefusedError)) return [new ReplyRefusedError(MESSAGES[reason]), null]
      return [err as Error, null]
    }
  }))
}

/** True when a batch's answers hold a refused reply. */
export const hasRefusedReply = (out: BatchResult): boolean => out.some(([err]) => err instanceof ReplyRefusedError)

/** Approximate bytes of a reply (payload plus a few per element), or -1 when nested deeper than `maxDepth`. */
function measure (v: unknown, maxDepth: number, depth: number): number {
  if (Buffer.isBuffer(v)) return v.length + 8
  if (typeof v === 'string') return v.length + 8
  if (!Array.isArray(v)) return 8
  if (depth >= maxDepth) return -1
  let n = 8
  for (const x of v) {
    const m = measure(x, maxDepth, depth + 1)
    if (m < 0) return -1
    n += m
  }
  return n
}
