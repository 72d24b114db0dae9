/**
 * What a Redis command is, from the command table of @ioredis/commands (the one ioredis itself
 * uses): whether it only reads (`readonly` flag), where its keys are (getKeyIndexes), whether it
 * blocks. No hand-written list of read or write commands: the few lists below are policy
 * (commands a shared, pooled connection cannot run) or fill a gap of the table (commands that
 * change data without carrying the `write` flag).
 */
import { exists, getKeyIndexes, hasFlag } from '@ioredis/commands'
import type { CommandRoute } from './runner.js'

/** One command argument: text from JSON or the URL, or raw bytes from a request body. */
export type Arg = string | Buffer

/**
 * Never run for a client, whatever UPSTASH_DENY_COMMANDS says: they change the state of the
 * gateway's shared connections (database, protocol, transaction, subscriber or monitor mode,
 * client settings), replicate or block a pooled connection (WAIT; see also the `blocking` flag).
 * Transactions are available through POST /multi-exec.
 */
export const ALWAYS_DENIED: ReadonlySet<string> = new Set([
  'select', 'auth', 'hello', 'quit', 'reset', 'client', 'readonly', 'readwrite', 'asking',
  'multi', 'exec', 'discard', 'watch', 'unwatch',
  'subscribe', 'psubscribe', 'ssubscribe', 'unsubscribe', 'punsubscribe', 'sunsubscribe', 'monitor',
  'sync', 'psync', 'replconf', 'wait', 'waitaof'
])

/**
 * Commands that change data although the table gives them no `write` flag (Redis 7 marks them
 * `may_replicate`, which @ioredis/commands does not carry): scripts, functions, stream groups, and
 * PUBLISH (propagated to the replicas).
 */
const MAY_WRITE: ReadonlySet<string> = new Set(['eval', 'evalsha', 'fcall', 'xgroup', 'publish', 'spublish'])

/** Scripts may touch keys they do not declare: never allowed to a token limited to a key prefix. */
export const SCRIPTS: ReadonlySet<string> = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro'])

/** Cursors are positions in one node's hash table (seeded per process): they go to the master only. */
const CURSORS: ReadonlySet<string> = new Set(['scan', 'hscan', 'sscan', 'zscan'])

/** Touch no data and no key: allowed to every token, also read-only and prefix-limited ones. */
export const HARMLESS: ReadonlySet<string> = new Set(['ping', 'echo', 'time'])

/**
 * Where the number of keys is an argument (index in the arguments after the command name), as in
 * getKeyIndexes: checked before calling it, which would otherwise loop that many times.
 */
const NUMKEYS_AT: Readonly<Record<string, number>> = {
  zunionstore: 1, zinterstore: 1, zdiffstore: 1,
  eval: 1, evalsha: 1, eval_ro: 1, evalsha_ro: 1, fcall: 1, fcall_ro: 1, blmpop: 1, bzmpop: 1,
  sintercard: 0, lmpop: 0, zunion: 0, zinter: 0, zmpop: 0, zintercard: 0, zdiff: 0, msetex: 0
}

export interface CommandInfo {
  /** Lower-case command name. */
  name: string
  /** The `readonly` flag: reads data only. */
  readOnly: boolean
  /** Changes (or may change) data: `write` flag, or a command of MAY_WRITE. */
  writes: boolean
  /** Where it runs: see KvService.commands. */
  route: CommandRoute
  /** The key arguments, by the table's key positions. */
  keys: Arg[]
}

/** A command the table does not know, or arguments it cannot locate keys in: answered as a Redis error. */
export class CommandRefused extends Error {
  constructor (message: string, readonly kind: 'unknown' | 'denied' | 'syntax') {
    super(message)
    this.name = 'CommandRefused'
  }
}

export const isKnownCommand = (name: string): boolean => exists(name.toLowerCase())

/** Reads the table for `name args...`; throws CommandRefused when unknown or denied by `deny`. */
export function describe (rawName: string, args: readonly Arg[], deny: ReadonlySet<string>): CommandInfo {
  const name = rawName.toLowerCase()
  if (!exists(name)) throw new CommandRefused(`ERR unknown command '${printable(rawName)}'`, 'unknown')
  if (ALWAYS_DENIED.has(name)) {
    throw new CommandRefused(`ERR command '${name.toUpperCase()}' is not available through this gateway${name === 'multi' || name === 'exec' ? ' (use POST /multi-exec)' : ''}`, 'denied')
  }
  if (hasFlag(name, 'blocking') && !nonBlockingRead(name, args)) {
    throw new CommandRefused(`ERR blocking command '${name.toUpperCase()}' is not available through this gateway`, 'denied')
  }
  if (deny.has(name)) throw new CommandRefused(`ERR command '${name.toUpperCase()}' is disabled on this gateway (UPSTASH_DENY_COMMANDS)`, 'denied')
  const readOnly = hasFlag(name, 'readonly')
  const writes = hasFlag(name, 'write') || MAY_WRITE.has(name)
  const route: CommandRoute = writes ? 'write' : readOnly && !CURSORS.has(name) ? 'replica' : 'master'
  return { name, readOnly, writes, route, keys: keysOf(name, args) }
}

/** XREAD / XREADGROUP without a BLOCK option answer at once. */
function nonBlockingRead (name: string, args: readonly Arg[]): boolean {
  if (name !== 'xread' && name !== 'xreadgroup') return false
  for (const a of args) {
    const s = a.toString().toUpperCase()
    if (s === 'STREAMS') return true
    if (s === 'BLOCK') return false
  }
  return true
}

function keysOf (name: string, args: readonly Arg[]): Arg[] {
  const at = NUMKEYS_AT[name]
  if (at !== undefined) {
    const raw = args[at]
    const n = raw === undefined ? NaN : Number(raw.toString())
    // Let Redis answer the syntax error; no key is read from arguments that are not there.
    if (!Number.isInteger(n) || n < 0 || n > args.length) return []
  }
  // The table's SORT reading skips non-string arguments: give it text (keys are returned as sent).
  const text = args.map(a => typeof a === 'string' ? a : a.toString('latin1'))
  return getKeyIndexes(name, text).filter(i => i < args.length).map(i => args[i]!)
}

/** A command name as it may appear in an error message: printable ASCII, at most 64 characters. */
function printable (s: string): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?')
  return clean.length > 64 ? `${clean.slice(0, 64)}...` : clean
}

/**
 * Where a whole request runs: any write makes it a write (the master, replica-confirmed); else
 * any master-only command puts it on the master; else (reads only) on a replica.
 */
export function routeOf (infos: readonly CommandInfo[]): CommandRoute {
  if (infos.some(i => i.route === 'write')) return 'write'
  if (infos.some(i => i.route === 'master')) return 'master'
  return 'replica'
}
