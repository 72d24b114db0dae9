/**
 * What a Redis command is, as the connected server itself says (`COMMAND`): arity, flags, ACL
 * categories, key specs, subcommands. Loaded from the master once and cached per server (by node
 * address), so a newer server's commands (or a module's) are known as that server knows them,
 * and a command the server lacks is unknown. No hand-written list of commands decides what a
 * command is; the policy (src/security/policy.ts) decides from these facts.
 */
import { exists as staticExists } from '@ioredis/commands'
import type { Redis } from 'ioredis'
import { nodeKey, type Connections } from '../redis/connections.js'
import { withTimeout } from '../redis/faults.js'
import type { Topology } from '../topology.js'

/** Where a key spec starts looking (Redis 7 key specs: `begin_search`). */
export type BeginSearch =
  | { type: 'index'; index: number }
  | { type: 'keyword'; keyword: string; startfrom: number }
  | { type: 'unknown' }

/** How a key spec finds its keys from where the search began (`find_keys`). */
export type FindKeys =
  | { type: 'range'; lastkey: number; keystep: number; limit: number }
  | { type: 'keynum'; keynumidx: number; firstkey: number; keystep: number }
  | { type: 'unknown' }

export interface KeySpec {
  /** RO, RW, OW, RM, access, update, insert, delete, not_key, incomplete, variable_flags. */
  flags: ReadonlySet<string>
  begin: BeginSearch
  find: FindKeys
}

export interface CommandSpec {
  /** Lower-case; a subcommand is `parent|sub`, as ACL rules name it. */
  name: string
  /** Redis arity: n exact argument count (name included), -n at least n. */
  arity: number
  flags: ReadonlySet<string>
  /** ACL categories without the `@`. */
  categories: ReadonlySet<string>
  keySpecs: readonly KeySpec[]
  /** The legacy key positions (first, last, step), for a command without key specs (old modules). */
  legacyKeys: { first: number; last: number; step: number }
  /** By lower-case subcommand name (without the parent's). Empty for plain commands. */
  subcommands: ReadonlyMap<string, CommandSpec>
}

type Flat = unknown[]

/** [k1, v1, k2, v2...] as a record (key specs and their parts are flat maps in RESP2). */
function record (flat: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (!Array.isArray(flat)) return out
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = flat[i + 1]
  return out
}

const strings = (v: unknown): string[] => Array.isArray(v) ? v.map(String) : []

function parseBegin (raw: unknown): BeginSearch {
  const r = record(raw)
  const spec = record(r.spec)
  if (r.type === 'index') return { type: 'index', index: Number(spec.index) }
  if (r.type === 'keyword') return { type: 'keyword', keyword: String(spec.keyword).toLowerCase(), startfrom: Number(spec.startfrom) }
  return { type: 'unknown' }
}

function parseFind (raw: unknown): FindKeys {
  const r = record(raw)
  const spec = record(r.spec)
  if (r.type === 'range') return { type: 'range', lastkey: Number(spec.lastkey), keystep: Number(spec.keystep), limit: Number(spec.limit) }
  if (r.type === 'keynum') return { type: 'keynum', keynumidx: Number(spec.keynumidx), firstkey: Number(spec.firstkey), keystep: Number(spec.keystep) }
  return { type: 'unknown' }
}

function parseKeySpec (raw: unknown): KeySpec {
  const r = record(raw)
  return { flags: new Set(strings(r.flags)), begin: parseBegin(r.begin_search), find: parseFind(r.find_keys) }
}

/** One entry of the `COMMAND` reply: [name, arity, flags, first, last, step, categories, tips, key specs, subcommands]. */
export function parseCommandEntry (entry: Flat): CommandSpec {
  const name = String(entry[0]).toLowerCase()
  const subs = new Map<string, CommandSpec>()
  for (const sub of (Array.isArray(entry[9]) ? entry[9] : []) as Flat[]) {
    const spec = parseCommandEntry(sub)
    subs.set(spec.name.slice(spec.name.indexOf('|') + 1), spec)
  }
  return {
    name,
    arity: Number(entry[1]),
    flags: new Set(strings(entry[2])),
    categories: new Set(strings(entry[6]).map(c => c.replace(/^@/, '').toLowerCase())),
    keySpecs: (Array.isArray(entry[8]) ? entry[8] : []).map(parseKeySpec),
    legacyKeys: { first: Number(entry[3]), last: Number(entry[4]), step: Number(entry[5]) },
    subcommands: subs
  }
}

/** A server's command table. */
export class CommandTable {
  private readonly byName: ReadonlyMap<string, CommandSpec>

  constructor (entries: readonly CommandSpec[]) {
    this.byName = new Map(entries.map(e => [e.name, e]))
  }

  /** Parses the whole `COMMAND` reply. */
  static fromReply (reply: unknown): CommandTable {
    if (!Array.isArray(reply) || reply.length === 0) throw new Error('COMMAND answered no command table')
    return new CommandTable((reply as Flat[]).map(parseCommandEntry))
  }

  get size (): number { return this.byName.size }

  has (name: string): boolean {
    return this.byName.has(name.toLowerCase())
  }

  /**
   * The spec that runs for `name args...`: the subcommand's when the command has subcommands
   * (`undefined` sub when the first argument names none), the command's otherwise.
   */
  lookup (name: string, args: ReadonlyArray<string | Buffer>): { command: CommandSpec; sub?: CommandSpec } | undefined {
    const command = this.byName.get(name.toLowerCase())
    if (command === undefined) return undefined
    if (command.subcommands.size === 0) return { command }
    const first = args[0]
    const sub = first === undefined ? undefined : command.subcommands.get(first.toString().toLowerCase())
    return sub === undefined ? { command } : { command, sub }
  }
}

/**
 * The command table of the master, read with `COMMAND` on its control connection when first
 * needed. Only the current master's table is kept: when the master changes (a failover, possibly
 * to a node running another Redis version, or the same address restarted with a newer one) the
 * new master's table is read anew, never taken from a cache. `current({ refreshOlderThanMs })`
 * also reads it again when it is older than that (a command the table lacks: a module loaded or
 * the server upgraded in place since it was read).
 */
export class CommandTables {
  private loaded?: { key: string; table: Promise<CommandTable>; at: number }
  private latest?: CommandTable

  constructor (private readonly topology: Topology, private readonly connections: Connections,
    private readonly timeoutMs: number, private readonly now: () => number = Date.now) {}

  /** The master's table (read now if not yet); rejects when no master is known or it cannot answer. */
  async current (opts: { refreshOlderThanMs?: number } = {}): Promise<CommandTable> {
    const master = this.topology.snapshot.master
    if (master === null) throw new Error('no master is known yet: the command table cannot be read')
    const key = nodeKey(master)
    let loaded = this.loaded
    const stale = opts.refreshOlderThanMs !== undefined && loaded !== undefined && this.now() - loaded.at >= opts.refreshOlderThanMs
    if (loaded === undefined || loaded.key !== key || stale) {
      const table = this.load(master)
      loaded = this.loaded = { key, table, at: this.now() }
      // A failed read is tried again by the next request.
      const mine = loaded
      table.catch(() => { if (this.loaded === mine) this.loaded = undefined })
    }
    const table = await loaded.table
    // A slower read of an earlier master never replaces the current master's table.
    if (this.loaded === loaded) this.latest = table
    return table
  }

  /**
   * Whether `name` is a command, synchronously (the router's path-form constraint): the last
   * table read from a server; before any was read, the command table ioredis ships.
   */
  isCommand (name: string): boolean {
    return this.latest !== undefined ? this.latest.has(name) : staticExists(name.toLowerCase())
  }

  private async load (addr: { host: string; port: number }): Promise<CommandTable> {
    const client: Redis = await this.connections.get(addr).control(this.timeoutMs)
    const reply = await withTimeout('COMMAND', this.timeoutMs * 5, async () => await client.call('COMMAND'))
    return CommandTable.fromReply(reply)
  }
}
