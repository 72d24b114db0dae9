/**
 * The server's own command table for the security fuzz (test/security/fuzz.test.ts): `COMMAND`
 * (names, arity, flags, ACL categories, subcommands) and `COMMAND DOCS` (the argument tokens such as
 * STORE, BLOCK, STREAMS, DB, BY, GET, REPLACE), read from a live node, never from a list of ours.
 */
import type { Redis } from 'ioredis'

export interface TableCommand {
  /** The words that name it: ['GET'], or ['CONFIG', 'GET'] for a subcommand. */
  words: string[]
  /** Redis arity: the exact number of words and arguments (> 0), or at least -arity (< 0). */
  arity: number
  flags: string[]
  categories: string[]
  /** Argument tokens of the command (and of its container's docs, for a subcommand). */
  tokens: string[]
  /** For the summary: the data family, or 'admin/dangerous', 'pubsub', 'scripting'... */
  family: string
}

/** Checked in this order: the first category a command has names its family. */
const FAMILY_ORDER = ['admin', 'dangerous', 'scripting', 'pubsub', 'transaction', 'connection', 'blocking', 'string', 'hash', 'list', 'set',
  'sortedset', 'geo', 'hyperloglog', 'bitmap', 'stream', 'keyspace', 'server']

export function familyOf (categories: string[]): string {
  const set = new Set(categories.map(c => c.replace(/^@/, '')))
  const f = FAMILY_ORDER.find(c => set.has(c)) ?? 'other'
  return f === 'admin' || f === 'dangerous' ? 'admin/dangerous' : f
}

/** Every value that follows a 'token' field anywhere in a COMMAND DOCS reply. */
function tokensIn (docs: unknown, out: Set<string>): void {
  if (!Array.isArray(docs)) return
  for (let i = 0; i < docs.length; i++) {
    const v = docs[i]
    if (v === 'token' && typeof docs[i + 1] === 'string') out.add(docs[i + 1] as string)
    else tokensIn(v, out)
  }
}

const strings = (v: unknown): string[] => Array.isArray(v) ? v.map(String) : []

/** Reads COMMAND and COMMAND DOCS from `c`: every command, and every subcommand as its own entry. */
export async function readCommandTable (c: Redis): Promise<TableCommand[]> {
  const [info, docs] = await Promise.all([c.call('COMMAND') as Promise<unknown[]>, c.call('COMMAND', 'DOCS') as Promise<unknown[]>])
  const tokensOf = new Map<string, string[]>()
  for (let i = 0; i + 1 < docs.length; i += 2) {
    const set = new Set<string>()
    tokensIn(docs[i + 1], set)
    tokensOf.set(String(docs[i]).toLowerCase(), [...set])
  }
  const out: TableCommand[] = []
  const add = (e: unknown[], tokens: string[]): void => {
    const name = String(e[0]).toLowerCase()
    const categories = strings(e[6])
    out.push({ words: name.split('|').map(w => w.toUpperCase()), arity: Number(e[1]), flags: strings(e[2]), categories, tokens, family: familyOf(categories) })
  }
  for (const e of info as unknown[][]) {
    const tokens = tokensOf.get(String(e[0]).toLowerCase()) ?? []
    add(e, tokens)
    for (const sub of (Array.isArray(e[9]) ? e[9] : []) as unknown[][]) add(sub, tokens)
  }
  return out.sort((a, b) => a.words.join(' ').localeCompare(b.words.join(' ')))
}

/** How many arguments (after the command's words) its arity allows: [min, max] (max bounded by `extra`). */
export function argCount (cmd: TableCommand, extra = 4): [number, number] {
  const min = Math.max(0, Math.abs(cmd.arity) - cmd.words.length)
  return cmd.arity > 0 ? [min, min] : [min, min + extra]
}
