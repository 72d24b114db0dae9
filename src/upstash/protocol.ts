/**
 * The request side of the Upstash REST protocol, as @upstash/redis and the Upstash docs use it:
 *   POST /            body ["SET","k","v","EX",10]               one command
 *   POST /pipeline    body [["SET","k","v"],["GET","k"]]         several, answered one by one
 *   POST /multi-exec  same body, run as one MULTI/EXEC transaction
 *   GET|POST /set/k/v?EX=10                                      path form: URL-decoded segments,
 *                     then the POST body (raw bytes) if any, then each query parameter as name[, value]
 * JSON arguments may be strings, numbers or booleans (the SDK sends numbers as JSON numbers).
 * Answers: {"result": ...} / {"error": "..."}; with `Upstash-Encoding: base64` strings are base64.
 */
import type { Arg } from '../security/keys.js'

/** An answer in the Upstash error shape `{"error": message}` with an HTTP status. */
export class UpstashHttpError extends Error {
  constructor (readonly statusCode: number, message: string, readonly retryAfter?: number) {
    super(message)
    this.name = 'UpstashHttpError'
  }
}

const bad = (message: string): UpstashHttpError => new UpstashHttpError(400, `ERR ${message}`)

/** The request body as JSON (whatever the content type: curl -d sends form-urlencoded). */
export function parseJsonBody (body: unknown): unknown {
  const text = Buffer.isBuffer(body) ? body.toString('utf8') : typeof body === 'string' ? body : ''
  if (text.trim() === '') throw bad('the request body must be a JSON array: ["COMMAND", "arg", ...]')
  try {
    return JSON.parse(text)
  } catch {
    throw bad('the request body is not valid JSON')
  }
}

/** One command: a non-empty JSON array whose first element is the command name. */
export function toCommand (value: unknown, where = 'the command'): Arg[] {
  if (!Array.isArray(value) || value.length === 0) throw bad(`${where} must be a non-empty JSON array: ["COMMAND", "arg", ...]`)
  if (typeof value[0] !== 'string' || value[0] === '') throw bad(`${where} must start with the command name (a string)`)
  return value.map((v: unknown, i) => {
    if (typeof v === 'string') return v
    if (typeof v === 'number' && Number.isFinite(v)) return String(v)
    if (typeof v === 'boolean') return String(v)
    throw bad(`argument ${i} of ${where} must be a string, a number or a boolean`)
  })
}

/** A pipeline or transaction body: a non-empty array of commands, at most `max`. */
export function toCommands (value: unknown, max: number): Arg[][] {
  if (!Array.isArray(value) || value.length === 0 || !value.every(Array.isArray)) {
    throw bad('the request body must be a non-empty JSON array of commands: [["SET","k","v"],["GET","k"]]')
  }
  if (value.length > max) throw bad(`at most ${max} commands in one request (UPSTASH_MAX_COMMANDS)`)
  return value.map((c: unknown, i) => toCommand(c, `command ${i + 1}`))
}

/**
 * The first path segment, decoded (the command name of the path form), or '' . The router asks
 * for it on every request (routes/upstash.ts), so it only slices: no splitting of the URL.
 */
export function firstSegment (rawUrl: string): string {
  const q = rawUrl.indexOf('?')
  const pathEnd = q < 0 ? rawUrl.length : q
  const start = rawUrl.indexOf('/')
  if (start < 0 || start >= pathEnd) return ''
  const next = rawUrl.indexOf('/', start + 1)
  const seg = rawUrl.slice(start + 1, next < 0 || next > pathEnd ? pathEnd : next)
  // Without a '%' there is nothing to decode (decodeURIComponent would return seg as it is).
  if (!seg.includes('%')) return seg
  try {
    return decodeURIComponent(seg)
  } catch {
    return seg
  }
}

/** The path form: segments, then the body (if any), then the query parameters (except _token). */
export function pathCommand (rawUrl: string, body: Buffer | undefined): Arg[] {
  const q = rawUrl.indexOf('?')
  const path = q < 0 ? rawUrl : rawUrl.slice(0, q)
  const segments = path.split('/').slice(1)
  if (segments.length > 1 && segments[segments.length - 1] === '') segments.pop() // a trailing slash
  const args: Arg[] = segments.map((s, i) => {
    try {
      return decodeURIComponent(s)
    } catch {
      throw bad(`path segment ${i + 1} is not valid percent-encoded UTF-8`)
    }
  })
  if (body !== undefined && body.length > 0) args.push(body)
  if (q >= 0) {
    for (const [name, value] of new URLSearchParams(rawUrl.slice(q + 1))) {
      if (name === '_token') continue
      args.push(name)
      if (value !== '') args.push(value)
    }
  }
  return args
}

/** The `upstash-sync-token` header as a replication offset, if it is one (the SDK first sends ""). */
export function syncTokenOf (header: string | string[] | undefined): number | undefined {
  const v = Array.isArray(header) ? header[0] : header
  return v !== undefined && /^[0-9]{1,15}$/.test(v.trim()) ? Number(v.trim()) : undefined
}
