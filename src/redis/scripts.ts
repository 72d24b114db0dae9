/**
 * Lua scripts, one constant each. They run on the master only; every write script returns a
 * small integer so the HTTP layer can tell created from replaced from refused.
 */
import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'

/**
 * PUT. KEYS[1] key; ARGV[1] value; ARGV[2] condition '' | 'NX' | 'XX' | 'ETAG'; ARGV[3] ttl seconds
 * ('0' = none); ARGV[4] '1' when this is a retry of a write whose first attempt may already have
 * applied; ARGV[5] with ETAG: the SHA-1 (hex) the current value must have (compare-and-set).
 * Returns 0 created, 1 replaced, -1 condition failed.
 *
 * The retry flag is how a conditional write recognises itself: if the earlier attempt applied, the
 * key now holds exactly our bytes, and answering 412 would be wrong. (Another client writing the
 * same bytes at the same moment is indistinguishable and leaves the same state.)
 */
export const PUT_SCRIPT = `
local cur = redis.call('GET', KEYS[1])
local existed = cur and 1 or 0
local ours = ARGV[4] == '1' and cur == ARGV[1]
if ARGV[2] == 'NX' and existed == 1 then
  if not ours then return -1 end
  existed = 0
end
if ARGV[2] == 'XX' and existed == 0 then return -1 end
if ARGV[2] == 'ETAG' and not ours and (not cur or redis.sha1hex(cur) ~= ARGV[5]) then return -1 end
if ARGV[3] ~= '0' then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return existed
`

/** SHA-1 of PUT_SCRIPT: its name in a server's script cache (EVALSHA). */
export const PUT_SCRIPT_SHA = createHash('sha1').update(PUT_SCRIPT).digest('hex')

/**
 * Sends PUT_SCRIPT by its SHA on connections whose server is known to hold it, by its text
 * otherwise. A connection is known once an EVAL of it succeeded; a NOSCRIPT answer (SCRIPT FLUSH,
 * a restarted server) makes it unknown again (`forget`). Sent through the plain EVALSHA command,
 * never ioredis's Script helper, which would resend the script on NOSCRIPT by itself: the retry is
 * the caller's new attempt, with a confirmation of its own (src/redis/group-commit.ts).
 */
export class PutScript {
  private readonly loaded = new WeakSet<Redis>()

  send (c: Redis, key: string, args: Array<string | Buffer>): Promise<unknown> {
    if (this.loaded.has(c)) return c.evalsha(PUT_SCRIPT_SHA, 1, key, ...args)
    return c.eval(PUT_SCRIPT, 1, key, ...args).then((reply) => { this.loaded.add(c); return reply })
  }

  /** After a NOSCRIPT answer on `c`: send the text again. */
  forget (c: Redis): void {
    this.loaded.delete(c)
  }
}

/** True for the NOSCRIPT answer to an EVALSHA whose script is not in the server's cache. */
export function isNoScript (err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT')
}
