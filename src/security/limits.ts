/**
 * Arguments that would make Redis grow one value past KV_MAX_VALUE_BYTES, refused before Redis
 * sees them: a 60-byte `SETRANGE k 104857599 x` allocates 100 MB on the master and on every
 * replica. Offsets are read as Redis reads them (t_string.c, bitops.c).
 */
import type { Arg } from './keys.js'

/** Why the command is refused, or null. `append`: the length to add to the key's current one (checked against the server). */
export type Growth = { refuse: string } | { append: { key: Arg; adds: number } } | null

const text = (a: Arg | undefined): string => a === undefined ? '' : a.toString()
const len = (a: Arg | undefined): number => a === undefined ? 0 : typeof a === 'string' ? Buffer.byteLength(a) : a.length

/** A non-negative decimal integer as Redis parses offsets, or NaN (Redis itself refuses those). */
function offset (a: Arg | undefined): number {
  const s = text(a)
  return /^[0-9]{1,20}$/.test(s) ? Number(s) : NaN
}

/** BITFIELD's `u8`/`i64` width and `#n` / `n` offset: the byte length the operation needs. */
function bitfieldBytes (type: Arg | undefined, off: Arg | undefined): number {
  const width = Number(/^[iu]([0-9]{1,2})$/i.exec(text(type))?.[1])
  const o = text(off)
  const bits = o.startsWith('#') ? offset(o.slice(1)) * width : offset(o)
  return Math.ceil((bits + width) / 8)
}

/**
 * Checks `name args...` (lower-case name, arguments after it) against `max` bytes per value.
 * Every single argument is bounded too (a value sent whole).
 */
export function valueGrowth (name: string, args: readonly Arg[], max: number): Growth {
  const tooLarge = (what: string): Growth => ({ refuse: `ERR ${what} would make a value larger than KV_MAX_VALUE_BYTES (${max} bytes)` })
  for (const a of args) if (len(a) > max) return tooLarge('an argument of this size')
  switch (name) {
    case 'setrange': {
      const o = offset(args[1])
      if (len(args[2]) > 0 && o + len(args[2]) > max) return tooLarge(`SETRANGE at offset ${text(args[1])}`)
      return null
    }
    case 'setbit': {
      const o = offset(args[1])
      if (Math.floor(o / 8) + 1 > max) return tooLarge(`SETBIT at offset ${text(args[1])}`)
      return null
    }
    case 'bitfield': {
      for (let i = 1; i < args.length; i++) {
        const op = text(args[i]).toLowerCase()
        if (op === 'get') i += 2
        else if (op === 'overflow') i += 1
        else if (op === 'set' || op === 'incrby') {
          if (bitfieldBytes(args[i + 1], args[i + 2]) > max) return tooLarge(`BITFIELD ${op.toUpperCase()} at offset ${text(args[i + 2])}`)
          i += 3
        }
      }
      return null
    }
    case 'append':
      return args.length === 2 ? { append: { key: args[0]!, adds: len(args[1]) } } : null
    default:
      return null
  }
}
