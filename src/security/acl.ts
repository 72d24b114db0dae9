/**
 * Redis ACL, the second wall: the users the gateway logs in as, as data. One source of truth for
 * the README's `ACL SETUSER` lines, compose.yaml, the demo and the test topology (`user` lines in
 * each node's config file, so they survive restarts and the sentinels' config rewrites).
 *
 * - The DATA user (REDIS_USERNAME) runs client commands and /kv reads and writes. Everything but
 *   `@admin`/`@dangerous`, minus what lets a script leave its database or reach the deployment's
 *   control plane; no key under the reserved prefix; no channel starting with `__` (a forged
 *   `__sentinel__:hello` hijacks the sentinels). The write pipeline's `ROLE; CLIENT ID; WAIT n`
 *   must run on the connection that wrote, so ROLE, CLIENT ID and WAIT stay: all three are
 *   `noscript` (no script can call them) and the command endpoint refuses them.
 * - The CONTROL user (REDIS_CONTROL_USERNAME) runs the gateway's own commands: topology checks
 *   (INFO, ROLE, PING), invalidation subscriptions, COMMAND, SCRIPT/FUNCTION KILL, and the rate
 *   limiter's counters under the reserved prefix. It cannot touch any other key.
 *
 * Checked against Redis 7.0 (`ACL CAT`, `COMMAND INFO`); the rules name no subcommand that 7.0
 * lacks, since ACL SETUSER refuses unknown ones.
 */
import { createHash } from 'node:crypto'
import { RESERVED_CHANNEL_PREFIX, RESERVED_KEY_PREFIX } from './reserved.js'

/** Default user names (the README and compose use these). */
export const DATA_USER = 'skv-data'
export const CONTROL_USER = 'skv-control'

/** Characters with a meaning in Redis glob patterns, escaped when a pattern names them literally. */
const GLOB = /[*?[\]\\]/g
const literal = (s: string): string => s.replace(GLOB, c => `\\${c}`)

/**
 * Glob patterns matching every name except those starting with `prefix`: for each proper prefix
 * `p` of it, the names that continue `p` with another character (`p[^c]*`) and `p` itself; plus
 * the empty name. E.g. `__skv:` gives `[^_]*`, ``, `_[^_]*`, `_`, `__[^s]*`, `__`, ...
 */
export function patternsExcept (prefix: string): string[] {
  const out: string[] = []
  for (let i = 0; i < prefix.length; i++) {
    const head = literal(prefix.slice(0, i))
    out.push(`${head}[^${literal(prefix[i]!)}]*`, head)
  }
  return out
}

/**
 * Rules of the data user (after `reset on >password`). `db`: REDIS_DB; SELECT is allowed for that
 * database only (the first-argument form `select|<db>`, deprecated in Redis 7 but supported).
 */
export function dataUserRules (db = 0): string[] {
  return [
    ...patternsExcept(RESERVED_KEY_PREFIX).map(p => `~${p}`),
    'resetchannels',
    ...patternsExcept(RESERVED_CHANNEL_PREFIX).filter(p => p !== '').map(p => `&${p}`),
    '+@all', '-@admin', '-@dangerous',
    // The write pipeline: ROLE proves the node is still master (noscript).
    '+role',
    // Another database: SELECT, MOVE, COPY ... DB (ACL cannot tell COPY's DB argument apart).
    '-select', ...(db === 0 ? [] : [`+select|${db}`]), '-move', '-copy',
    // Scripts run as this user; loading code other clients run, and killing it, is not theirs.
    '-script', '+script|load', '+script|exists', '-function',
    // Connection state of pooled connections; CLIENT ID (write pipeline), SETNAME, TRACKING (near-cache).
    '-client', '+client|id', '+client|setname', '+client|tracking',
    '-memory', '+memory|usage', '-acl'
  ]
}

/** Rules of the control user (after `reset on >password`). */
export function controlUserRules (db = 0): string[] {
  return [
    `~${literal(RESERVED_KEY_PREFIX)}*`,
    'resetchannels', '&__redis__:invalidate',
    '+@all', '-@admin', '-@dangerous',
    // Topology checks, SCRIPT/FUNCTION KILL of a script that timed out, CLIENT KILL of a replica's
    // replication link stuck in TCP backoff after an asymmetric cut (src/replica-links.ts).
    '+info', '+role', '-script', '+script|kill', '-function', '+function|kill', '+client|kill',
    '-select', ...(db === 0 ? [] : [`+select|${db}`]), '-move', '-copy'
  ]
}

export interface AclUsers {
  dataUser?: string
  controlUser?: string
  /** REDIS_DB. Default: 0. */
  db?: number
}

/** `user` rule for a password: `>clear` (placeholder or clear text) or, when `hashed`, `#sha256`. */
const passwordRule = (password: string, hashed: boolean): string =>
  hashed ? `#${createHash('sha256').update(password).digest('hex')}` : `>${password}`

/**
 * The `ACL SETUSER` lines creating both users, as the README gives them. The passwords are
 * placeholders unless given. Run them on every node, then `ACL SAVE` (with an aclfile) or
 * `CONFIG REWRITE`, so a restarted or failed-over node keeps them.
 */
export function aclSetuserLines (opts: AclUsers & { dataPassword?: string; controlPassword?: string } = {}): string[] {
  const data = opts.dataUser ?? DATA_USER
  const control = opts.controlUser ?? CONTROL_USER
  return [
    ['ACL SETUSER', data, 'reset', 'on', passwordRule(opts.dataPassword ?? '<data-password>', false), ...dataUserRules(opts.db)].join(' '),
    ['ACL SETUSER', control, 'reset', 'on', passwordRule(opts.controlPassword ?? '<control-password>', false), ...controlUserRules(opts.db)].join(' ')
  ]
}

/**
 * The same users as `user` directives of a redis.conf (or an aclfile), passwords stored as
 * SHA-256 (never in clear in the file). Patterns hold no spaces or quotes: each rule is one word.
 */
export function aclConfigLines (opts: AclUsers & { dataPassword: string; controlPassword: string }): string[] {
  return [
    ['user', opts.dataUser ?? DATA_USER, 'reset', 'on', passwordRule(opts.dataPassword, true), ...dataUserRules(opts.db)].join(' '),
    ['user', opts.controlUser ?? CONTROL_USER, 'reset', 'on', passwordRule(opts.controlPassword, true), ...controlUserRules(opts.db)].join(' ')
  ]
}
