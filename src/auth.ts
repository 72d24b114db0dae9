/**
 * Bearer tokens with rights (read, write) and an optional key-prefix scope.
 * Tokens are compared in constant time: every configured token is compared on every request
 * (as SHA-256 digests of equal length), so timing tells neither which token nor how much matched.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { ConfigError } from './config.js'
import { GatewayError } from './errors.js'

export type Right = 'read' | 'write'

export interface Principal {
  /** Shown in logs instead of the token. */
  name: string
  rights: ReadonlySet<Right>
  /** Keys this principal may touch start with this ('' = every key). */
  prefix: string
}

interface TokenEntry extends Principal { digest: Buffer }

/** The principal of an open gateway (no token configured). */
export const OPEN_ACCESS: Principal = { name: 'anonymous', rights: new Set(['read', 'write']), prefix: '' }

const digest = (token: string): Buffer => createHash('sha256').update(token).digest()

function parseRights (raw: unknown, where: string): Set<Right> {
  const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? [...raw].map(c => c === 'r' ? 'read' : c === 'w' ? 'write' : c) : []
  const rights = new Set<Right>()
  for (const r of list) {
    if (r !== 'read' && r !== 'write') throw new ConfigError(`Invalid ${where}: rights must be r, w or rw (["read","write"] in the file)`)
    rights.add(r)
  }
  if (rights.size === 0) throw new ConfigError(`Invalid ${where}: a token needs at least one right`)
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
    out.push({ name: `token-${i + 1}`, rights: parseRights(rights, where), prefix, digest: digest(token) })
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
        rights: parseRights(e.rights, where),
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

export class Auth {
  constructor (private readonly tokens: TokenEntry[]) {}

  /** No token configured: every request is allowed. */
  get open (): boolean { return this.tokens.length === 0 }

  /** The principal for an `Authorization` header value; throws 401 when missing or unknown. */
  authenticate (header: string | undefined): Principal {
    if (this.open) return OPEN_ACCESS
    const token = bearerToken(header)
    if (token === null) throw new GatewayError('GW_ERR_UNAUTHORIZED', 'a bearer token is required (Authorization: Bearer <token>)')
    return this.lookup(token)
  }

  /** Constant-time lookup of a raw token. */
  lookup (token: string): Principal {
    const d = digest(token)
    let found: TokenEntry | undefined
    for (const e of this.tokens) {
      if (timingSafeEqual(d, e.digest) && found === undefined) found = e
    }
    if (found === undefined) throw new GatewayError('GW_ERR_UNAUTHORIZED', 'the bearer token is not valid')
    return found
  }
}

/** Throws 403 unless `p` has `right` on `key` (or, without a key, on anything at all). */
export function authorize (p: Principal, right: Right, key?: string): void {
  if (!p.rights.has(right)) throw new GatewayError('GW_ERR_FORBIDDEN', `this token has no ${right} right`)
  if (key !== undefined && !key.startsWith(p.prefix)) {
    throw new GatewayError('GW_ERR_FORBIDDEN', `this token may only use keys starting with "${p.prefix}"`)
  }
}
