/**
 * Who may run what through the Upstash endpoint. Tokens are the gateway's own (AUTH_TOKENS):
 *   - read-only commands (`readonly` flag) need the read right;
 *   - every other command needs read AND write (Redis write commands answer with data: GETDEL,
 *     LPOP, INCR, SET ... GET), except PING, ECHO and TIME, open to every token;
 *   - a token limited to a key prefix may only run commands whose every key (by the command
 *     table's key positions) starts with it: no keyless command (SCAN, DBSIZE, PUBLISH...) and
 *     no script (a script may touch keys it does not declare), PING/ECHO/TIME aside.
 */
import type { Principal } from '../auth.js'
import { type CommandInfo, HARMLESS, SCRIPTS } from './commands.js'

/** The token may not run this command: answered 403 with a NOPERM message. */
export class NoPermission extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'NoPermission'
  }
}

export function authorizeCommand (p: Principal, info: CommandInfo): void {
  const upper = info.name.toUpperCase()
  if (HARMLESS.has(info.name)) return
  if (!p.rights.has('read')) throw new NoPermission(`NOPERM this token has no read right: it cannot run '${upper}'`)
  if (!info.readOnly && !p.rights.has('write')) {
    throw new NoPermission(`NOPERM this token is read-only: '${upper}' is not a read-only command`)
  }
  if (p.prefix === '') return
  const scope = `this token may only use keys starting with "${p.prefix}"`
  if (SCRIPTS.has(info.name)) throw new NoPermission(`NOPERM ${scope}: scripts ('${upper}') may touch any key`)
  if (info.keys.length === 0) throw new NoPermission(`NOPERM ${scope}: '${upper}' names no key`)
  const prefix = Buffer.from(p.prefix)
  for (const k of info.keys) {
    const bytes = typeof k === 'string' ? Buffer.from(k) : k
    if (bytes.length < prefix.length || !bytes.subarray(0, prefix.length).equals(prefix)) {
      throw new NoPermission(`NOPERM ${scope}: '${upper}' names another key`)
    }
  }
}
