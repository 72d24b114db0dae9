/**
 * No reply can crash the process or fill its memory.
 *
 * ioredis parses replies with redis-parser inside the socket's 'data' listener, recursively: a
 * script returning a table nested a few thousand deep overflows the stack there, and the
 * RangeError, thrown from an event listener, would end the process. The guard wraps the stream's
 * 'data' listeners on every (re)connect: an exception closes that connection instead (its
 * in-flight commands fail, see `guardReason`). It can also bound the bytes of one reply: bytes
 * received while no reply completes are counted, and past the limit the connection is closed, the
 * only way to stop Redis sending the rest.
 *
 * Collateral: every command pipelined on the same connection at that moment fails too. Hence the
 * command endpoint's own pool (NodePool.commands), never shared with /kv traffic.
 */
import type { Redis } from 'ioredis'

/** Why a connection was closed while a reply arrived: `depth` (the parser overflowed), `bytes`, or `unreadable`. */
export type GuardReason = 'depth' | 'bytes' | 'unreadable'

/** Bytes of slack past the limit: replies are counted per chunk, a chunk may start the next one. */
const SLACK_BYTES = 64 * 1024

/** Per socket: a reconnect (new socket) starts clean. */
const reasons = new WeakMap<object, GuardReason>()

/** Why the gateway closed this socket (a client's `stream` at the time a command was sent), if it did. */
export function guardReason (stream: object | undefined): GuardReason | undefined {
  return stream === undefined ? undefined : reasons.get(stream)
}

/** Closes `c`'s current connection for `reason`; its in-flight commands fail, ioredis reconnects. */
export function closeForReply (c: Redis, reason: GuardReason): void {
  const stream = c.stream
  if (reasons.has(stream)) return
  reasons.set(stream, reason)
  stream.destroy()
}

export interface GuardOptions {
  /** Longest reply, in bytes as received (RESP). Default: unbounded. */
  maxReplyBytes?: number
}

/** Installs the guard on `c` (on every connect from now on). */
export function guardReplies (c: Redis, opts: GuardOptions = {}): void {
  // ioredis attaches its parser before the 'connect' event is emitted (next tick): wrap it then.
  c.on('connect', () => wrap(c, opts.maxReplyBytes === undefined ? Infinity : opts.maxReplyBytes + SLACK_BYTES))
}

interface Queued { commandQueue: { length: number } }

function wrap (c: Redis, limit: number): void {
  const stream = c.stream
  const listeners = stream.listeners('data') as Array<(chunk: Buffer) => void>
  if (listeners.length === 0 || reasons.has(stream)) return
  stream.removeAllListeners('data')
  const queued = c as unknown as Queued
  let pending = 0
  stream.on('data', (chunk: Buffer) => {
    if (reasons.has(stream)) return // closing: what follows belongs to a refused reply
    const before = queued.commandQueue.length
    try {
      for (const l of listeners) l.call(stream, chunk)
    } catch (err) {
      closeForReply(c, err instanceof RangeError ? 'depth' : 'unreadable')
      return
    }
    // A completed reply shrinks the queue: count again from there.
    pending = queued.commandQueue.length < before ? 0 : pending + chunk.length
    if (pending > limit) closeForReply(c, 'bytes')
  })
}
