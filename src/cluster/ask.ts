/**
 * Redis Cluster's ASK redirect, as the KV service and the command runner follow it. While a hash
 * slot migrates, its old owner answers `-ASK <slot> <host:port>` for a key it no longer holds (moved
 * by MIGRATE, or never there): the command did NOT run there, and the importing node runs it when
 * `ASKING` comes right before it on the same connection. The gateway then sends it there once, in
 * one pipeline (ASKING, the command, and for a write ROLE + WAIT n on that node's connection, n the
 * WAIT count of the shard that node is master of), and never follows an ASK answered by that
 * redirected attempt (no chain of redirects): a refusal there is retried the ordinary way.
 */
import { nodeKey, type NodeAddress } from '../redis/connections.js'
import type { KvTopology } from './shard.js'

/** Where an ASK sends a command: the importing node and the shard it is master of. */
export interface AskTarget { node: NodeAddress; shard: KvTopology }

/** Commands of a batch answered ASK (indexes in the batch) and where they go. */
export interface Asked { target: AskTarget; idx: number[] }

/** Resolves ASK answers to their target (Cluster mode only; absent in Sentinel mode). */
export interface Redirects {
  /** The target of an ASK answer, or null: not an ASK, or its node is no shard's master in the gateway's view. */
  askTarget (err: unknown): AskTarget | null
}

const ASK = /^ASK (\d+) (.+):(\d+)$/
const MOVED = /^MOVED (\d+) (.+):(\d+)$/

/** The slot and node a redirect reply matching `re` names, or null for any other error. */
function redirectOf (re: RegExp, err: unknown): { slot: number; node: NodeAddress } | null {
  if (!(err instanceof Error) || err.name !== 'ReplyError') return null
  const m = re.exec(err.message)
  return m === null ? null : { slot: Number(m[1]), node: { host: m[2]!, port: Number(m[3]) } }
}

/** The slot and node an `-ASK <slot> <host:port>` reply names, or null for any other error. */
export function askOf (err: unknown): { slot: number; node: NodeAddress } | null { return redirectOf(ASK, err) }

/** The slot and node a `-MOVED <slot> <host:port>` reply names, or null for any other error. */
export function movedOf (err: unknown): { slot: number; node: NodeAddress } | null { return redirectOf(MOVED, err) }

/**
 * The single ASK target of a batch's answers (`out`: one [error, reply] per user command; for a
 * transaction MULTI, the queued answers, EXEC) and which commands it names; null when no command
 * answered ASK, or the answers name different or unknown nodes (the batch is then retried the
 * ordinary way). A transaction with a command answered ASK was not executed (EXECABORT): all of it
 * goes (`idx` lists every command).
 */
export function askedOf (out: ReadonlyArray<readonly [Error | null, unknown]>, transaction: boolean, redirects: Redirects | undefined): Asked | null {
  if (redirects === undefined) return null
  const answers = transaction ? out.slice(1, -1) : out
  if (transaction && out[out.length - 1]?.[0] == null) return null
  let target: AskTarget | null = null
  const idx: number[] = []
  for (const [i, [err]] of answers.entries()) {
    if (askOf(err) === null) continue
    const t = redirects.askTarget(err)
    if (t === null || (target !== null && nodeKey(t.node) !== nodeKey(target.node))) return null
    target = t
    idx.push(i)
  }
  if (target === null) return null
  return { target, idx: transaction ? answers.map((_, i) => i) : idx }
}

/** Sends ASKING right before each command `sends` issues (ASKING lasts for one command), in order. */
export function askingEach<T> (c: { asking(): Promise<unknown> }, sends: ReadonlyArray<() => Promise<T>>): Array<Promise<T>> {
  return sends.map(send => { c.asking().catch(() => { /* the command's own answer tells */ }); return send() })
}
