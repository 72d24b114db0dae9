/**
 * The one place that decides whether a token may run a Redis command through the command
 * endpoint, from the server's own command metadata (src/security/command-table.ts) and the
 * token's rights (src/auth.ts). Every route of the endpoint (JSON, path form, pipeline,
 * multi-exec) calls `decide` for every command; nothing reaches Redis without it.
 *
 * Admitted, by ACL category and flags as the server reports them:
 *   - the data families (strings, hashes, lists, sets, sorted sets, geo, hyperloglog, bitmaps,
 *     streams, keyspace commands on named keys): `r` for a read-only invocation (the `readonly`
 *     flag and only `RO` key specs: PFCOUNT rewrites its key, so it needs `w`), else `r` and `w`;
 *   - scripts (EVAL, EVALSHA, FCALL and their _RO forms): `x`, plus `w` (or `r` for the _RO forms);
 *   - PUBLISH / SPUBLISH and PUBSUB introspection: `p`;
 *   - PING, ECHO, TIME: any token;
 *   - module commands (flag `module`) in a data family or an admitted module family (`@json`),
 *     routed and checked by their own flags and keys (`decideModule`): `r` (and `w` unless flagged
 *     `readonly`), never for a prefixed token (a module may touch keys it does not declare:
 *     JSON.MGET declares only its first), no argument under the reserved prefix, none larger than
 *     KV_MAX_VALUE_BYTES, never with the flags `admin`, `noscript`, `pubsub`, `blocking`, `no_auth`.
 * Refused for every token: `@admin`, `@dangerous`, `@connection`, `@transaction` (use
 * /multi-exec), blocking forms, subscriptions (they need a stream), script and function
 * management, RESTORE, MIGRATE, MOVE, SWAPDB, SELECT, COPY (its DB option), anything
 * outside the families above, and UPSTASH_DENY_COMMANDS. Keys and channels: no key under the
 * gateway's reserved prefix, no channel starting with `__`; a prefixed token only names keys,
 * channels and channel patterns inside its prefix, and runs no keyless command.
 */
import type { Principal, Right } from '../auth.js'
import type { CommandSpec, CommandTable } from './command-table.js'
import { type Arg, KeysNotLocated, locate, xreadBlocks } from './keys.js'
import { type Growth, valueGrowth } from './limits.js'
import { isReservedChannel, isReservedKey, startsWithBytes } from './reserved.js'

export type { Arg } from './keys.js'

/** Where a command runs: a replica (reads), the master (no confirmation), or the master as a replica-confirmed write. */
export type CommandRoute = 'replica' | 'master' | 'write'

/** Refused for what the command is (answered 400 `ERR ...`, like Redis refusing it). */
export class CommandRefused extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'CommandRefused'
  }
}

/** Refused for who asks (answered 403 `NOPERM ...`, like Redis ACL). */
export class NoPermission extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'NoPermission'
  }
}

/** How an answer is cleaned before it is sent: SCAN and RANDOMKEY never show reserved keys, PUBSUB never reserved channels. */
export type ReplyFilter = 'scan' | 'randomkey' | 'channels'

export interface Decision {
  /** Lower-case command name (the parent's for a subcommand). */
  name: string
  route: CommandRoute
  /** True when the invocation changes no data (a write attempt where only these ran applied nothing). */
  readOnly: boolean
  /** EVAL, EVALSHA, FCALL and their _RO forms. */
  script: boolean
  filter?: ReplyFilter
  /** APPEND: the key and the bytes it adds, to check against the key's current length. */
  append?: { key: Arg; adds: number }
}

export interface PolicySettings {
  /** UPSTASH_DENY_COMMANDS, lower-case. */
  deny: ReadonlySet<string>
  /** KV_MAX_VALUE_BYTES. */
  maxValueBytes: number
}

/** The data families: ACL categories of commands on stored data. */
const DATA_FAMILIES = ['string', 'hash', 'list', 'set', 'sortedset', 'geo', 'hyperloglog', 'bitmap', 'stream', 'keyspace']
/**
 * Module families: categories a module declares for commands on data stored under the keys they
 * name (RedisJSON: `@json`). Other modules (search, time series...) read keys their indexes or
 * filters select, which no key check can bound: not admitted.
 */
const MODULE_FAMILIES = ['json']
/** Flags no module command passes with: server management, kept out of scripts, connection state. */
const MODULE_FORBIDDEN_FLAGS = ['admin', 'noscript', 'pubsub', 'blocking', 'no_auth']
/** Categories no token may run, whatever else the command is. */
const FORBIDDEN_CATEGORIES = ['admin', 'dangerous', 'connection', 'transaction']
/**
 * Commands that reach another database or server, or write a serialized value Redis trusts
 * (RESTORE), even where the categories let them through (MOVE is `@keyspace @write @fast`). COPY
 * too: its DB option reaches another database and Redis ACL (the second wall) cannot tell that
 * argument apart, so the data user is denied COPY as a whole.
 */
const OTHER_DATABASES: ReadonlySet<string> = new Set(['move', 'swapdb', 'select', 'migrate', 'restore', 'restore-asking', 'copy'])
/** The script runners (the `x` right). The rest of `@scripting` (SCRIPT, FUNCTION) manages the server. */
const SCRIPT_RUNNERS: ReadonlySet<string> = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro'])
/** Publishing, and the PUBSUB introspection subcommands (the `p` right). */
const PUBLISHERS: ReadonlySet<string> = new Set(['publish', 'spublish'])
/** Answer without touching data: open to every token. */
const HARMLESS: ReadonlySet<string> = new Set(['ping', 'echo', 'time'])
/** Cursors are positions in one node's hash table: they go to the master only. */
const CURSORS: ReadonlySet<string> = new Set(['scan', 'hscan', 'sscan', 'zscan'])
/** Replies that may list reserved names. */
const FILTERS: Readonly<Record<string, ReplyFilter>> = { scan: 'scan', randomkey: 'randomkey', 'pubsub|channels': 'channels', 'pubsub|shardchannels': 'channels' }

const upper = (s: string): string => s.toUpperCase()
const GLOB = /[*?[\\]/

/**
 * Decides `cmd` (name first) for `p`. Throws CommandRefused (400) or NoPermission (403).
 * Synchronous and without I/O; an APPEND's growth is checked by the caller (`append`).
 */
export function decide (p: Principal, cmd: readonly Arg[], table: CommandTable, settings: PolicySettings): Decision {
  const [rawName, ...args] = cmd
  const name = String(rawName).toLowerCase()
  const found = table.lookup(name, args)
  if (found === undefined) throw new CommandRefused(`ERR unknown command '${printable(String(rawName))}'`)
  const spec: CommandSpec = found.sub ?? found.command
  const shown = upper(spec.name.replace('|', ' '))
  if (found.command.subcommands.size > 0 && found.sub === undefined) {
    throw new CommandRefused(`ERR unknown subcommand '${printable(String(args[0] ?? ''))}' of '${upper(name)}'`)
  }
  const argc = cmd.length
  if (spec.arity > 0 ? argc !== spec.arity : argc < -spec.arity) throw new CommandRefused(`ERR wrong number of arguments for '${spec.name}' command`)
  if (settings.deny.has(name) || settings.deny.has(spec.name)) {
    throw new CommandRefused(`ERR command '${shown}' is disabled on this gateway (UPSTASH_DENY_COMMANDS)`)
  }
  if (HARMLESS.has(name)) return { name, route: 'master', readOnly: true, script: false }
  const notAvailable = (why: string): CommandRefused => new CommandRefused(`ERR command '${shown}' is not available through this gateway (${why})`)
  const forbidden = FORBIDDEN_CATEGORIES.find(c => spec.categories.has(c))
  if (forbidden !== undefined) throw notAvailable(name === 'multi' || name === 'exec' ? 'use POST /multi-exec' : `@${forbidden}`)
  if (OTHER_DATABASES.has(name)) throw notAvailable(name === 'copy' ? 'its DB option reaches another database' : 'it reaches another database or server')
  if (spec.flags.has('blocking') || spec.categories.has('blocking')) {
    if (!((name === 'xread' || name === 'xreadgroup') && !xreadBlocks(cmd))) throw notAvailable('it blocks a shared connection')
  }
  const need = (right: Right, what: string): void => {
    if (!p.rights.has(right)) throw new NoPermission(`NOPERM this token has no ${right} right: it cannot run '${shown}' (${what})`)
  }

  if (spec.flags.has('module') || found.command.flags.has('module')) return decideModule(p, name, spec, cmd, settings, need, notAvailable)

  if (spec.categories.has('scripting')) {
    if (!SCRIPT_RUNNERS.has(name)) throw notAvailable('it manages the server\'s scripts')
    need('script', 'scripts need x')
    const readOnly = spec.flags.has('readonly')
    need(readOnly ? 'read' : 'write', readOnly ? 'a read-only script needs r' : 'a script that may write needs w')
    if (p.prefix !== '') throw new NoPermission(`NOPERM this token may only use keys starting with "${p.prefix}": scripts may touch any key`)
    checkKeys(p, locateOrRefuse(spec, cmd).keys, shown)
    return { name, route: readOnly ? 'replica' : 'write', readOnly, script: true }
  }

  if (spec.categories.has('pubsub')) {
    if (!PUBLISHERS.has(name) && name !== 'pubsub') throw notAvailable('subscriptions need a streaming connection')
    need('pubsub', 'publish/subscribe needs p')
    checkChannels(p, name === 'pubsub' ? spec.name : name, cmd.slice(name === 'pubsub' ? 2 : 1), shown)
    return { name, route: 'master', readOnly: !PUBLISHERS.has(name), script: false, ...filterOf(spec.name) }
  }

  if (!DATA_FAMILIES.some(c => spec.categories.has(c))) throw notAvailable('not a command on stored data')
  const located = locateOrRefuse(spec, cmd)
  const readOnly = spec.flags.has('readonly') && located.keysReadOnly
  need('read', 'every data command needs r')
  if (!readOnly) need('write', 'it changes stored data')
  if (located.channels.length > 0) checkChannels(p, 'publish', located.channels, shown)
  checkKeys(p, located.keys, shown)
  const growth: Growth = valueGrowth(name, args, settings.maxValueBytes)
  if (growth !== null && 'refuse' in growth) throw new CommandRefused(growth.refuse)
  return {
    name,
    route: readOnly ? (CURSORS.has(name) ? 'master' : 'replica') : 'write',
    readOnly,
    script: false,
    ...filterOf(spec.name),
    ...(growth !== null ? { append: growth.append } : {})
  }
}

/**
 * A module command: admitted by its own flags, categories and keys. Its key positions come from
 * the module (often the legacy first/last/step triple), which may leave out keys it touches, so
 * no prefixed token runs it and no argument may name a reserved key.
 */
function decideModule (p: Principal, name: string, spec: CommandSpec, cmd: readonly Arg[], settings: PolicySettings,
  need: (right: Right, what: string) => void, notAvailable: (why: string) => CommandRefused): Decision {
  const shown = upper(spec.name.replace('|', ' '))
  const flag = MODULE_FORBIDDEN_FLAGS.find(f => spec.flags.has(f))
  if (flag !== undefined) throw notAvailable(`a module command flagged ${flag}`)
  if (spec.categories.has('scripting') || spec.categories.has('pubsub')) throw notAvailable('a module command on scripts or channels')
  if (![...DATA_FAMILIES, ...MODULE_FAMILIES].some(c => spec.categories.has(c))) throw notAvailable('a module command outside the admitted data families')
  const located = locateOrRefuse(spec, cmd)
  if (located.keys.length === 0 || located.channels.length > 0) throw notAvailable('a module command must name the keys it works on')
  const readOnly = spec.flags.has('readonly') && !spec.flags.has('write') && located.keysReadOnly
  need('read', 'every data command needs r')
  if (!readOnly) need('write', 'it changes stored data')
  if (p.prefix !== '') throw new NoPermission(`NOPERM this token may only use keys starting with "${p.prefix}": a module command may touch keys it does not declare`)
  // Any argument may be a key the module did not declare (JSON.MGET declares its first key only).
  for (const a of cmd.slice(1)) if (isReservedKey(a)) throw new NoPermission(`NOPERM '${shown}' names a key reserved for the gateway`)
  if (cmd.some(a => Buffer.byteLength(a) > settings.maxValueBytes)) {
    throw new CommandRefused(`ERR an argument of '${shown}' is larger than KV_MAX_VALUE_BYTES (${settings.maxValueBytes} bytes)`)
  }
  return { name, route: readOnly ? 'replica' : 'write', readOnly, script: false }
}

function filterOf (specName: string): { filter?: ReplyFilter } {
  const f = FILTERS[specName]
  return f === undefined ? {} : { filter: f }
}

function locateOrRefuse (spec: CommandSpec, argv: readonly Arg[]): ReturnType<typeof locate> {
  try {
    return locate(spec, argv)
  } catch (err) {
    if (err instanceof KeysNotLocated) throw new CommandRefused(`ERR ${err.message}`)
    throw err
  }
}

/** No reserved key for anyone; a prefixed token names at least one key and only keys inside its prefix. */
function checkKeys (p: Principal, keys: readonly Arg[], shown: string): void {
  for (const k of keys) {
    if (isReservedKey(k)) throw new NoPermission(`NOPERM '${shown}' names a key reserved for the gateway`)
  }
  if (p.prefix === '') return
  const scope = `NOPERM this token may only use keys starting with "${p.prefix}"`
  if (keys.length === 0) throw new NoPermission(`${scope}: '${shown}' names no key`)
  const prefix = Buffer.from(p.prefix)
  for (const k of keys) if (!startsWithBytes(k, prefix)) throw new NoPermission(`${scope}: '${shown}' names another key`)
}

/**
 * Channels (PUBLISH's first argument, PUBSUB NUMSUB's list) and channel patterns (PUBSUB
 * CHANNELS): none reserved; for a prefixed token, all inside its prefix, and a pattern only when
 * its literal start is the prefix (so it cannot match outside it).
 */
function checkChannels (p: Principal, form: string, list: readonly Arg[], shown: string): void {
  const patterns = form === 'pubsub|channels' || form === 'pubsub|shardchannels'
  const channels = form === 'publish' || form === 'spublish' ? list.slice(0, 1) : list
  for (const c of channels) {
    if (!patterns && isReservedChannel(c)) throw new NoPermission(`NOPERM '${shown}' names a channel reserved for Redis and Sentinel (starting with "__")`)
  }
  if (p.prefix === '') return
  const scope = `NOPERM this token may only use channels starting with "${p.prefix}"`
  if (channels.length === 0 || (patterns && GLOB.test(p.prefix))) throw new NoPermission(`${scope}: '${shown}' names no channel inside it`)
  const prefix = Buffer.from(p.prefix)
  for (const c of channels) if (!startsWithBytes(c, prefix)) throw new NoPermission(`${scope}: '${shown}' names another channel`)
}

/** A name as it may appear in an error message: printable ASCII, at most 64 characters. */
function printable (s: string): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?')
  return clean.length > 64 ? `${clean.slice(0, 64)}...` : clean
}

/**
 * Where a whole request runs: any write makes it a write (the master, replica-confirmed); else
 * any master-only command puts it on the master; else (reads only) on a replica.
 */
export function routeOf (decisions: ReadonlyArray<{ route: CommandRoute }>): CommandRoute {
  if (decisions.some(d => d.route === 'write')) return 'write'
  if (decisions.some(d => d.route === 'master')) return 'master'
  return 'replica'
}
