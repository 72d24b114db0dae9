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

const asBytes = (v: string | Buffer): Buffer => typeof v === 'string' ? Buffer.from(v) : v

/** True for a key of the gateway's own (compared as bytes: a Buffer key is what Redis sees). */
export function isReservedKey (key: string | Buffer): boolean {
  const b = asBytes(key)
  return b.length >= RESERVED_KEY_BYTES.length && b.subarray(0, RESERVED_KEY_BYTES.length).equals(RESERVED_KEY_BYTES)
}

/** True for a channel (or channel pattern) that starts with `__`. */
export function isReservedChannel (channel: string | Buffer): boolean {
  const b = asBytes(channel)
  return b.length >= 2 && b[0] === 0x5f && b[1] === 0x5f
}

/**
 * True when a glob pattern (SCAN MATCH, PSUBSCRIBE...) could match a name starting with `prefix`:
 * it cannot only when its literal start already differs from the prefix. Used to refuse patterns
 * that could reach reserved names.
 */
export function patternMayMatchPrefix (pattern: string | Buffer, prefix: string): boolean {
  const p = asBytes(pattern).toString('latin1')
  for (let i = 0; i < prefix.length; i++) {
    const c = p[i]
    if (c === undefined) return false
    if (c === '*' || c === '?' || c === '[' || c === '\\') return true
    if (c !== prefix[i]) return false
  }
  return true
}
