/**
 * Bearer tokens with explicit rights and an optional key-prefix scope.
 *   r read, w write, x scripts (EVAL/EVALSHA/FCALL and their _RO forms; never with a prefix),
 *   p publish/subscribe (a prefixed token: only channels inside its prefix), o operations
 *   (/topology, /metrics). The file form names them: ["read","write","script","pubsub","ops"].
 * Tokens are never compared as given: a request's token is hashed (SHA-256) and its digest looked
 * up in a Map of the configured tokens' digests, so timing tells nothing about how much of a token
 * matched (an attacker would need inputs whose digests share a prefix with a secret's) and the
 * lookup costs the same with one token or thousands.
 */
import { hash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { ConfigError } from './config.js'
import { GatewayError } from './errors.js'
import { isReservedKey, RESERVED_KEY_PREFIX } from './security/reserved.js'

export type Right = 'read' | 'write' | 'script' | 'pubsub' | 'ops'

/** Rights letters of AUTH_TOKENS and the names of the file form. */
export const RIGHT_LETTERS: Readonly<Record<string, Right>> = { r: 'read', w: 'write', x: 'script', p: 'pubsub', o: 'ops' }
const RIGHT_NAMES: ReadonlySet<string> = new Set(Object.values(RIGHT_LETTERS))

export interface Principal {
  /** Shown in logs instead of the token. */
  name: string
  rights: ReadonlySet<Right>
  /** Keys this principal may touch start with this ('' = every key). */
  prefix: string
}

interface TokenEntry extends Principal { digest: Buffer }

/** The principal of an open gateway (no token configured): read and write only (no scripts, pub/sub or operations). */
export const OPEN_ACCESS: Principal = { name: 'anonymous', rights: new Set(['read', 'write']), prefix: '' }

const digest = (token: string): Buffer => hash('sha256', token, 'buffer')

function parseRights (raw: unknown, where: string, prefix: string): Set<Right> {
  const list: unknown[] = Array.isArray(raw) ? raw : typeof raw === 'string' ? [...raw].map(c => RIGHT_LETTERS[c] ?? c) : []
  const rights = new Set<Right>()
  for (const r of list) {
    if (typeof r !== 'string' || !RIGHT_NAMES.has(r)) {
      throw new ConfigError(`Invalid ${where}: rights are letters of rwxpo (["read","write","script","pubsub","ops"] in the file)`)
    }
    rights.add(r as Right)
  }
  if (rights.size === 0) throw new ConfigError(`Invalid ${where}: a token needs at least one right`)
  // A script may touch any key: a token limited to a prefix can never have x.
  if (prefix !== '' && rights.has('script')) throw new ConfigError(`Invalid ${where}: the script right (x) cannot be given to a token limited to a key prefix`)
  return rights
}

/** Parses AUTH_TOKENS (`token:rights[:prefix],...`) and AUTH_TOKENS_FILE. Never puts a token in a message. */
export function loadTokens (env: string | undefined, file: string | undefined): TokenEntry[] {
  const out: TokenEntry[] = []
  for (const [i, item] of (env ?? '').split(',').map(s => s.trim()).filter(Boolean).entries()) {
    const first = item.indexOf(':')
    const second = first < 0 ? -1 : item.indexOf(':', first + 1)
    const token = first < 0 ? item : item.slice(0, first)
    const rights = first < 0 ? '' : second < 0 ? item.slice(first + 1) : item.slice(first + 1, second)
    const prefix = second < 0 ? '' : item.slice(second + 1)
    const where = `environment variable AUTH_TOKENS (entry ${i + 1})`
    if (token.length < 8) throw new ConfigError(`Invalid ${where}: a token must be at least 8 characters`)
    out.push({ name: `token-${i + 1}`, rights: parseRights(rights, where, prefix), prefix, digest: digest(token) })
  }
  if (file !== undefined) {
    let list: unknown
    try {
      list = JSON.parse(readFileSync(file, 'utf8'))
    } catch (err) {
      throw new ConfigError(`Invalid environment variable AUTH_TOKENS_FILE: cannot read JSON from ${file} (${(err as Error).message.split('\n')[0]})`)
    }
    if (!Array.isArray(list)) throw new ConfigError('Invalid environment variable AUTH_TOKENS_FILE: the file must hold a JSON array')
    list.forEach((e: { name?: unknown; token?: unknown; rights?: unknown; prefix?: unknown }, i) => {
      const where = `AUTH_TOKENS_FILE entry ${i + 1}`
      if (typeof e?.token !== 'string' || e.token.length < 8) throw new ConfigError(`Invalid ${where}: "token" must be a string of at least 8 characters`)
      if (e.prefix !== undefined && typeof e.prefix !== 'string') throw new ConfigError(`Invalid ${where}: "prefix" must be a string`)
      out.push({
        name: typeof e.name === 'string' ? e.name : `file-${i + 1}`,
        rights: parseRights(e.rights, where, e.prefix ?? ''),
        prefix: e.prefix ?? '',
        digest: digest(e.token)
      })
    })
  }
  return out
}

/** The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive), or null. */
export function bearerToken (header: string | undefined): string | null {
  return /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1] ?? null
}

/** The query parameter that may carry a token on the Upstash routes (`?_token=`, as Upstash's REST API). */
export const QUERY_TOKEN_PARAM = '_token'

/**
 * The token of the `_token` query parameter of a raw request URL, or null. The name is compared
 * after decoding it the way URLSearchParams does (`%5Ftoken` and `_tok%65n` are `_token` too, so
 * the log redaction in src/logger.ts must, and does, cover those spellings); the first one wins.
 */
export function queryToken (rawUrl: string): string | null {
  const q = rawUrl.indexOf('?')
  if (q < 0) return null
  return new URLSearchParams(rawUrl.slice(q + 1)).get(QUERY_TOKEN_PARAM)
}

export class Auth {
  /** Digest (as a binary string) -> token; the first entry wins when a token is listed twice. */
  private readonly byDigest = new Map<string, TokenEntry>()

  constructor (private readonly tokens: TokenEntry[]) {
    for (const e of tokens) if (!this.byDigest.has(e.digest.toString('latin1'))) this.byDigest.set(e.digest.toString('latin1'), e)
  }

  /** No token configured: every request is allowed. */
  get open (): boolean { return this.tokens.length === 0 }

  /** The principal for an `Authorization` header value; throws 401 when missing or unknown. */
  authenticate (header: string | undefined): Principal {
    if (this.open) return OPEN_ACCESS
    const token = bearerToken(header)
    if (token === null) throw new GatewayError('GW_ERR_UNAUTHORIZED', 'a bearer token is required (Authorization: Bearer <token>)')
    return this.lookup(token)
  }

  /** The principal of a raw token, looked up by its digest. */
  lookup (token: string): Principal {
    const found = this.byDigest.get(digest(token).toString('latin1'))
    if (found === undefined) throw new GatewayError('GW_ERR_UNAUTHORIZED', 'the bearer token is not valid')
    return found
  }
}

/**
 * Throws 403 unless `p` has `right` on `key` (or, without a key, on anything at all). Keys under
 * the gateway's reserved prefix are out of reach for every token.
 */
export function authorize (p: Principal, right: Right, key?: string): void {
  if (!p.rights.has(right)) throw new GatewayError('GW_ERR_FORBIDDEN', `this token has no ${right} right`)
  if (key !== undefined && isReservedKey(key)) {
    throw new GatewayError('GW_ERR_FORBIDDEN', `keys starting with "${RESERVED_KEY_PREFIX}" are reserved for the gateway`)
  }
  if (key !== undefined && !key.startsWith(p.prefix)) {
    throw new GatewayError('GW_ERR_FORBIDDEN', `this token may only use keys starting with "${p.prefix}"`)
  }
}
