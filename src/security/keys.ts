/**
 * Where the keys and channels of one command invocation are, from the server's key specs (Redis
 * 7 `COMMAND` metadata), read the way Redis reads them (db.c getKeysUsingKeySpecs) with one
 * deliberate difference: a keyword spec (STORE, STOREDIST, STREAMS...) yields the keys after
 * EVERY occurrence of its keyword, not only the first. Redis's own parsers differ from its key
 * specs there (GEORADIUS ... STORE a STORE b stores into b, while the spec and COMMAND GETKEYS
 * name a), so the checked set must be a superset of what any of them will touch.
 * Arguments whose keys cannot be placed with certainty are refused, never guessed.
 */
import type { CommandSpec, KeySpec } from './command-table.js'

/** One command argument: text from JSON or the URL, or raw bytes from a request body. */
export type Arg = string | Buffer

export interface Located {
  /** Every key the invocation may touch (possibly more). */
  keys: Arg[]
  /** Channels that key specs name (`not_key` specs: SPUBLISH, SSUBSCRIBE...). */
  channels: Arg[]
  /** Every located key is only read (`RO` key specs): PFCOUNT's RW spec makes it a write. */
  keysReadOnly: boolean
}

/** The keys of these arguments cannot be located with certainty (answered 400; Redis would refuse most). */
export class KeysNotLocated extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'KeysNotLocated'
  }
}

/** The argument's bytes as Redis sees them (UTF-8 of a string), one char per byte. */
const text = (a: Arg | undefined): string =>
  a === undefined ? '' : (typeof a === 'string' ? Buffer.from(a) : a).toString('latin1')

/** A strict decimal integer, as Redis's string2ll reads it; NaN otherwise. */
function integer (a: Arg | undefined): number {
  const s = text(a)
  return /^-?(0|[1-9][0-9]{0,15})$/.test(s) ? Number(s) : NaN
}

/** Where the search of one spec begins: every candidate `first` index (several for a repeated keyword). */
function beginnings (spec: KeySpec, argv: readonly Arg[]): number[] {
  const b = spec.begin
  if (b.type === 'index') return [b.index]
  if (b.type === 'keyword') {
    const out: number[] = []
    const forward = b.startfrom > 0
    const start = forward ? b.startfrom : argv.length + b.startfrom
    for (let i = start; forward ? i < argv.length : i >= 1; i += forward ? 1 : -1) {
      if (i >= 1 && i < argv.length && text(argv[i]).toLowerCase() === b.keyword) out.push(i + 1)
    }
    return out
  }
  throw new KeysNotLocated('the keys of this command depend on data (not locatable)')
}

/** The key indexes of one spec starting at `first`, as Redis computes them. */
function indexes (spec: KeySpec, argv: readonly Arg[], first: number, arity: number): number[] {
  const f = spec.find
  let last: number
  let step: number
  if (f.type === 'range') {
    if (f.lastkey >= 0) last = first + f.lastkey
    else if (f.limit === 0) last = argv.length + f.lastkey
    else last = first + Math.floor((argv.length - first) / f.limit) + f.lastkey
    step = f.keystep
  } else if (f.type === 'keynum') {
    const n = integer(argv[first + f.keynumidx])
    if (!Number.isInteger(n) || n < 0) throw new KeysNotLocated('the number of keys is not a non-negative integer')
    if (n > argv.length) throw new KeysNotLocated('the number of keys is larger than the number of arguments')
    first += f.firstkey
    last = first + n - 1
    step = f.keystep
  } else {
    throw new KeysNotLocated('the keys of this command depend on data (not locatable)')
  }
  const out: number[] = []
  if (!(step >= 1)) return out
  for (let j = first; j <= last; j += step) {
    if (j >= argv.length || j < 1) {
      // Redis answers such arguments with an arity or syntax error; a fixed-arity command never gets here.
      if (arity < 0) throw new KeysNotLocated('the arguments do not hold the keys this command needs')
      continue
    }
    out.push(j)
  }
  return out
}

/**
 * The key spec Redis makes up for a module command registered with the legacy (first, last, step)
 * triple only (module.c moduleCreateCommandProxy: RW, access, update, whatever the command does;
 * RedisJSON registers every command so). It locates the keys but says nothing about reading or
 * writing them: the command's own `readonly` / `write` flags do.
 */
export function isLegacyStandIn (spec: CommandSpec, ks: KeySpec): boolean {
  if (!spec.flags.has('module')) return false
  const named = [...ks.flags].filter(f => f !== 'variable_flags')
  return named.length === 3 && ks.flags.has('RW') && ks.flags.has('access') && ks.flags.has('update')
}

/**
 * Locates the keys and channels of `argv` (the command name first; for a subcommand spec the
 * subcommand second, as Redis counts). Throws KeysNotLocated when they cannot be placed.
 */
export function locate (spec: CommandSpec, argv: readonly Arg[]): Located {
  const keys: Arg[] = []
  const channels: Arg[] = []
  let keysReadOnly = true
  if (spec.keySpecs.length === 0) {
    if (spec.flags.has('movablekeys')) throw new KeysNotLocated('this command has no key specs to locate its keys')
    const { first, last, step } = spec.legacyKeys
    if (first > 0 && step > 0) {
      const end = last < 0 ? argv.length + last : last
      for (let j = first; j <= end && j < argv.length; j += step) keys.push(argv[j]!)
    }
    return { keys, channels, keysReadOnly: spec.flags.has('readonly') }
  }
  for (const ks of spec.keySpecs) {
    if (ks.flags.has('incomplete')) throw new KeysNotLocated('the server says its key specs of this command are incomplete')
    const isChannel = ks.flags.has('not_key')
    for (const first of beginnings(ks, argv)) {
      const found = indexes(ks, argv, first, spec.arity)
      for (const j of found) (isChannel ? channels : keys).push(argv[j]!)
      if (!isChannel && found.length > 0 && !ks.flags.has('RO') && !isLegacyStandIn(spec, ks)) keysReadOnly = false
    }
  }
  return { keys, channels, keysReadOnly }
}

/**
 * XREAD / XREADGROUP: whether the BLOCK option is given, found exactly where Redis's own parser
 * (t_stream.c xreadCommand) finds it: options are read left to right until STREAMS, GROUP takes
 * two arguments (a consumer may be named STREAMS or BLOCK).
 */
export function xreadBlocks (argv: readonly Arg[]): boolean {
  for (let i = 1; i < argv.length; i++) {
    const more = argv.length - i - 1
    const o = text(argv[i]).toLowerCase()
    if (o === 'block' && more > 0) return true
    if (o === 'count' && more > 0) i++
    else if (o === 'streams' && more > 0) return false
    else if (o === 'group' && more >= 2) i += 2
    else if (o !== 'noack') return false // Redis answers a syntax error
  }
  return false
}
