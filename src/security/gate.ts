/**
 * The command endpoint's gate: every command of a request is decided by the policy against the
 * master's own command table before anything is sent, then its answer is cleaned of reserved
 * names. The I/O the policy needs (the table, an APPEND's current length) happens here.
 */
import type { Principal } from '../auth.js'
import type { Config } from '../config.js'
import { GatewayError } from '../errors.js'
import type { Connections } from '../redis/connections.js'
import type { Topology } from '../topology.js'
import { type CommandTable, CommandTables } from './command-table.js'
import { type Arg, CommandRefused, type Decision, decide, NoPermission, type PolicySettings, type ReplyFilter } from './policy.js'
import { KeyNodes } from './key-node.js'
import { isReservedChannel, isReservedKey } from './reserved.js'

/** How old the table must be before a command it lacks makes the gate read it again. */
const UNKNOWN_REFRESH_MS = 10_000

export class CommandGate {
  readonly tables: CommandTables
  private readonly settings: PolicySettings
  private readonly keyNodes: KeyNodes

  constructor (config: Config, topology: Topology, connections: Connections) {
    this.tables = new CommandTables(topology, connections, config.commandTimeoutMs)
    this.keyNodes = new KeyNodes(topology, connections, config)
    this.settings = { deny: new Set(config.upstashDenyCommands), maxValueBytes: config.maxValueBytes }
  }

  /** Synchronous: is `name` a command of the server (the path form's router constraint)? */
  isCommand (name: string): boolean {
    return this.tables.isCommand(name)
  }

  /**
   * Decides every command for `p`. A refusal (CommandRefused, NoPermission) is thrown, or with
   * `each` returned in the command's place (a pipeline answers it and runs the others).
   */
  async check (p: Principal, cmds: readonly Arg[][], each: boolean): Promise<Array<Decision | CommandRefused | NoPermission>> {
    let table: CommandTable
    try {
      table = await this.tables.current()
    } catch (err) {
      throw new GatewayError('GW_ERR_REDIS_UNAVAILABLE', 'the command table could not be read from the master', { cause: err, retryAfter: 1 })
    }
    const out: Array<Decision | CommandRefused | NoPermission> = []
    for (const cmd of cmds) {
      try {
        if (!table.has(String(cmd[0]))) {
          // The server may know it now (a module loaded, the server upgraded in place): its table is
          // read again, at most once per UNKNOWN_REFRESH_MS, before the command is called unknown.
          table = await this.tables.current({ refreshOlderThanMs: UNKNOWN_REFRESH_MS }).catch(() => table)
        }
        const d = decide(p, cmd, table, this.settings)
        if (d.append !== undefined) await this.checkAppend(d.append)
        out.push(d)
      } catch (err) {
        if (!each || !(err instanceof CommandRefused || err instanceof NoPermission)) throw err
        out.push(err)
      }
    }
    return out
  }

  /**
   * APPEND may not grow a value past KV_MAX_VALUE_BYTES: its current length, read just before on
   * the node the APPEND runs on (the master; in Cluster mode its slot's shard master).
   */
  private async checkAppend ({ key, adds }: { key: Arg; adds: number }): Promise<void> {
    const node = this.keyNodes.nodeOf(key)
    let length: number
    try {
      length = await this.keyNodes.strlen(key, node)
    } catch (err) {
      // WRONGTYPE: APPEND itself will answer that error.
      if (err instanceof Error && err.name === 'ReplyError' && err.message.startsWith('WRONGTYPE')) return
      throw new GatewayError('GW_ERR_REDIS_UNAVAILABLE', 'the master could not be asked for the value\'s length', { cause: err, retryAfter: 1 })
    }
    if (length + adds > this.settings.maxValueBytes) {
      throw new CommandRefused(`ERR APPEND would make a value larger than KV_MAX_VALUE_BYTES (${this.settings.maxValueBytes} bytes)`)
    }
  }
}

/** An answer without the names no client may see (the gateway's keys, Redis's channels). */
export function filterReply (filter: ReplyFilter | undefined, value: unknown): unknown {
  if (filter === undefined || value === null) return value
  if (filter === 'randomkey') return isName(value) && isReservedKey(value) ? null : value
  if (filter === 'channels') return Array.isArray(value) ? value.filter(c => !(isName(c) && isReservedChannel(c))) : value
  // SCAN: [cursor, [keys...]]
  if (Array.isArray(value) && Array.isArray(value[1])) return [value[0], (value[1] as unknown[]).filter(k => !(isName(k) && isReservedKey(k)))]
  return value
}

const isName = (v: unknown): v is Arg => typeof v === 'string' || Buffer.isBuffer(v)
