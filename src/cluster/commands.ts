/**
 * The command endpoint (Upstash) in Cluster mode: which hash slot each command addresses, as Redis
 * Cluster itself decides it (the key positions come from @ioredis/commands, the table ioredis's
 * Cluster client routes by). A command whose keys span slots gets Redis's own CROSSSLOT error; a
 * command naming no key runs on one shard only when that is all it can mean.
 */
import { getKeyIndexes } from '@ioredis/commands'
import calculateSlot from 'cluster-key-slot'
import type { CommandReply } from '../upstash/outcomes.js'

/** Redis Cluster's answer to a command whose keys hash to different slots. */
export const CROSSSLOT = 'CROSSSLOT Keys in request don\'t hash to the same slot'

/**
 * Keyless commands whose answer does not depend on the shard that runs them (PUBLISH reaches every
 * node of the cluster; a script given no key touches none). Others (SCAN, DBSIZE, RANDOMKEY,
 * SCRIPT LOAD...) would see or change one shard only: refused.
 */
const ANY_SHARD = new Set(['ping', 'echo', 'time', 'publish', 'eval', 'eval_ro', 'evalsha', 'evalsha_ro', 'fcall', 'fcall_ro'])

/** An error reply the way ioredis gives one (the routes send `message`). */
const replyError = (message: string): Error => Object.assign(new Error(message), { name: 'ReplyError' })

/** The slot `cmd` ([name, ...args], name lower-case) addresses: null when any shard may run it; an Error when it cannot run. */
export function slotOf (cmd: ReadonlyArray<string | Buffer>): number | null | Error {
  const name = String(cmd[0]).toLowerCase()
  const args = cmd.slice(1) as Array<string | Buffer>
  let keys: number[]
  try {
    keys = getKeyIndexes(name, args)
  } catch {
    return replyError(`ERR the keys of '${name}' cannot be located: not supported in Redis Cluster mode`)
  }
  if (keys.length === 0) {
    return ANY_SHARD.has(name) ? null : replyError(`ERR '${name}' names no key: in Redis Cluster mode it would reach one shard only (not supported)`)
  }
  const slots = new Set(keys.map(i => calculateSlot(args[i]!)))
  return slots.size > 1 ? replyError(CROSSSLOT) : [...slots][0]!
}

/** A command that is not run answers its own error, as Redis would in a pipeline. */
export const refused = (err: Error): CommandReply => [err, null]
