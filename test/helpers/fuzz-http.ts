/**
 * A raw HTTP client for the property-based tests (test/fuzz.test.ts): node:http rather than fetch,
 * so the path is sent exactly as given (fetch would normalise `/kv/..` or `%2e`), header values may
 * hold any byte a real client can send, and several values of one header can be sent as separate
 * lines. Every answer is checked against the invariants that hold for ANY request while Redis is
 * healthy (see `invariantViolations`); a violation throws, which fails (and shrinks) the property.
 */
import http from 'node:http'
import net from 'node:net'
import { ERROR_CODES } from '../../src/errors.js'

export interface Reply {
  method: string
  path: string
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
  text: string
  /** Parsed body when it is JSON, else undefined. */
  json: unknown
}

export interface Send {
  headers?: Record<string, string | string[]>
  body?: Buffer | string
  /** Send the body with Transfer-Encoding: chunked, in pieces of this many bytes. */
  chunkSize?: number
  timeoutMs?: number
}

export const STACK_MARKER = '    at '
export const ADDRESS_MARKER = '127.0.0.1:'

/** Thrown for a broken invariant; the message is what fast-check prints with the counterexample. */
export class InvariantError extends Error {
  override name = 'InvariantError'
}

/** Short, printable description of an answer for failure messages. */
export function describe (r: Reply): string {
  const body = r.text.length > 300 ? `${r.text.slice(0, 300)}...` : r.text
  return `${r.method} ${r.path.length > 200 ? `${r.path.slice(0, 200)}...` : r.path} -> ${r.status} ${JSON.stringify(body)}`
}

/**
 * What is wrong with `r` whatever the request was:
 * - no 5xx (Redis is healthy during the fuzz run);
 * - every 4xx/5xx (except to HEAD, which has no body) is JSON exactly {error:{code,message}}, the code
 *   matches /^GW_ERR_/ and is the code of that status in src/errors.ts, the message is not empty;
 * - no JSON body, and no error body of any type, holds a stack trace or an internal address
 *   (2xx octet-stream bodies are the user's own bytes and are not looked at);
 * - 401 carries WWW-Authenticate; every answer carries X-Request-Id.
 */
export function invariantViolations (r: Reply, opts: { requestId?: boolean } = {}): string[] {
  const out: string[] = []
  if (r.status >= 500) out.push(`status ${r.status} (no 5xx while Redis is healthy)`)
  const type = String(r.headers['content-type'] ?? '')
  const isJson = type.startsWith('application/json')
  if (r.status >= 400 && r.method !== 'HEAD') {
    if (!isJson) out.push(`error answer with content-type ${JSON.stringify(type)}, not application/json`)
    const body = r.json as { error?: { code?: unknown; message?: unknown } } | undefined
    const shapeOk = body !== undefined && body !== null && typeof body === 'object' && !Array.isArray(body) &&
      Object.keys(body).join() === 'error' && typeof body.error === 'object' && body.error !== null &&
      Object.keys(body.error).sort().join() === 'code,message'
    if (!shapeOk) out.push('error body is not exactly {error:{code,message}}')
    const code = body?.error?.code
    const message = body?.error?.message
    if (typeof code !== 'string' || !/^GW_ERR_[A-Z_]+$/.test(code)) out.push(`error code ${JSON.stringify(code)} does not match /^GW_ERR_/`)
    else if ((ERROR_CODES as Record<string, number>)[code] !== r.status) out.push(`error code ${code} is documented as ${(ERROR_CODES as Record<string, number>)[code]}, answered with ${r.status}`)
    if (typeof message !== 'string' || message.length === 0) out.push('error message is missing or empty')
  }
  if (isJson || r.status >= 400) {
    if (r.text.includes(STACK_MARKER)) out.push('body holds a stack trace ("    at ")')
    if (r.text.includes(ADDRESS_MARKER)) out.push('body holds an internal address ("127.0.0.1:")')
  }
  if (r.status === 401 && !/^Bearer\b/.test(String(r.headers['www-authenticate'] ?? ''))) out.push('401 without WWW-Authenticate: Bearer')
  if (opts.requestId !== false && r.headers['x-request-id'] === undefined) out.push('no X-Request-Id')
  return out
}

export class FuzzClient {
  /** Answers received (all of them checked). */
  count = 0
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 4 })
  private readonly host: string
  private readonly port: number

  constructor (base: string) {
    const u = new URL(base)
    this.host = u.hostname
    this.port = Number(u.port)
  }

  /** Sends one request; throws InvariantError when the answer breaks an invariant. */
  async request (method: string, path: string, opts: Send = {}): Promise<Reply> {
    const r = await this.raw(method, path, opts)
    this.count++
    const bad = invariantViolations(r)
    if (bad.length > 0) throw new InvariantError(`${bad.join('; ')}\n  answer: ${describe(r)}`)
    return r
  }

  /** Sends one request without checking the answer. */
  raw (method: string, path: string, opts: Send = {}): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const body = opts.body === undefined ? undefined : Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body)
      const headers: Record<string, string | string[]> = { ...(opts.headers ?? {}) }
      if (body !== undefined && opts.chunkSize === undefined) headers['content-length'] = String(body.length)
      if (opts.chunkSize !== undefined) headers['transfer-encoding'] = 'chunked'
      const timeoutMs = opts.timeoutMs ?? 10_000
      const req = http.request({ host: this.host, port: this.port, method, path, headers, agent: this.agent }, res => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('error', reject)
        res.on('end', () => {
          clearTimeout(timer)
          const buf = Buffer.concat(chunks)
          const text = buf.toString('utf8')
          let json: unknown
          if (String(res.headers['content-type'] ?? '').includes('application/json') && text !== '') {
            try { json = JSON.parse(text) } catch { json = undefined }
          }
          resolve({ method, path, status: res.statusCode ?? 0, headers: res.headers, body: buf, text, json })
        })
      })
      const timer = setTimeout(() => req.destroy(new Error(`${method} ${path.slice(0, 120)}: no answer within ${timeoutMs} ms`)), timeoutMs)
      req.on('error', err => { clearTimeout(timer); reject(err) })
      if (body !== undefined && opts.chunkSize !== undefined) {
        for (let i = 0; i < body.length; i += opts.chunkSize) req.write(body.subarray(i, i + opts.chunkSize))
        req.end()
      } else {
        req.end(body)
      }
    })
  }

  close (): void {
    this.agent.destroy()
  }
}

/**
 * Sends `request` (any bytes, e.g. a malformed request line or header) on a new connection and
 * parses the one answer (Content-Length, chunked or until close). For what node:http refuses to send.
 */
export function rawExchange (base: string, request: Buffer, timeoutMs = 5000): Promise<Reply> {
  const u = new URL(base)
  return new Promise<Reply>((resolve, reject) => {
    const chunks: Buffer[] = []
    const s = net.connect(Number(u.port), u.hostname, () => s.write(request))
    const timer = setTimeout(() => s.destroy(new Error(`no complete answer within ${timeoutMs} ms`)), timeoutMs)
    const finish = (): void => {
      clearTimeout(timer)
      const all = Buffer.concat(chunks)
      const end = all.indexOf('\r\n\r\n')
      if (end < 0) { reject(new Error(`no HTTP answer (got ${JSON.stringify(all.toString('latin1').slice(0, 200))})`)); return }
      const [statusLine = '', ...lines] = all.subarray(0, end).toString('latin1').split('\r\n')
      const headers: http.IncomingHttpHeaders = {}
      for (const l of lines) {
        const i = l.indexOf(':')
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
      }
      let body = all.subarray(end + 4)
      if (/chunked/i.test(String(headers['transfer-encoding'] ?? ''))) {
        const parts: Buffer[] = []
        let rest = body
        for (;;) {
          const nl = rest.indexOf('\r\n')
          const size = nl < 0 ? 0 : parseInt(rest.subarray(0, nl).toString('latin1'), 16)
          if (!(size > 0)) break
          parts.push(rest.subarray(nl + 2, nl + 2 + size))
          rest = rest.subarray(nl + 2 + size + 2)
        }
        body = Buffer.concat(parts)
      } else if (headers['content-length'] !== undefined) {
        body = body.subarray(0, Number(headers['content-length']))
      }
      const text = body.toString('utf8')
      let json: unknown
      if (String(headers['content-type'] ?? '').includes('application/json') && text !== '') {
        try { json = JSON.parse(text) } catch { json = undefined }
      }
      const method = request.subarray(0, Math.max(0, request.indexOf(' '))).toString('latin1')
      const path = request.subarray(method.length + 1, Math.max(0, request.indexOf('\r\n'))).toString('latin1')
      resolve({ method, path, status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0), headers, body, text, json })
    }
    s.on('data', (c: Buffer) => chunks.push(c))
    s.on('end', finish)
    s.on('error', err => {
      clearTimeout(timer)
      // A reset after a complete answer still counts as that answer.
      if (Buffer.concat(chunks).includes('\r\n\r\n')) finish()
      else reject(err)
    })
  })
}
