/**
 * Names no client may reach, by any route: the gateway's own keys and the channels Redis and
 * Sentinel use to talk to each other (a forged `__sentinel__:hello` message can make every
 * sentinel follow a rogue master).
 */

/** Every key the gateway itself writes (rate-limit counters...) starts with this. */
export const RESERVED_KEY_PREFIX = '__skv:'

const RESERVED_KEY_BYTES = Buffer.from(RESERVED_KEY_PREFIX)

/** Channels starting with `__` are Redis's and Sentinel's: __sentinel__:*, __redis__:*, __keyspace@*, __keyevent@*. */
export const RESERVED_CHANNEL_PREFIX = '__'

const RESERVED_CHANNEL_BYTES = Buffer.from(RESERVED_CHANNEL_PREFIX)

/** True when `name` starts with `prefix`, compared as bytes (a string as its UTF-8: what Redis sees). */
export function startsWithBytes (name: string | Buffer, prefix: Buffer): boolean {
  const b = typeof name === 'string' ? Buffer.from(name) : name
  return b.length >= prefix.length && b.subarray(0, prefix.length).equals(prefix)
}

/** True for a key of the gateway's own. */
export function isReservedKey (key: string | Buffer): boolean {
  return startsWithBytes(key, RESERVED_KEY_BYTES)
}

/** True for a channel (or channel pattern) that starts with `__`. */
export function isReservedChannel (channel: string | Buffer): boolean {
  return startsWithBytes(channel, RESERVED_CHANNEL_BYTES)
}
