/**
 * Edge-of-HTTP helpers for the auth / http-semantics / rate-limit / browser tests:
 * - rawRequest: one request over a plain TCP socket (Connection: close), so a test sees exactly
 *   the bytes on the wire (fetch hides any body sent with HEAD or 304);
 * - httpRequest: node:http with an optional local source address (127.0.0.2, ... are loopback too),
 *   to look like a different client IP;
 * - leak checks over every answer body a test saw.
 */
import http from 'node:http'
import net from 'node:net'

export interface RawAnswer {
  status: number
  /** Lower-cased header names; repeated headers joined with ', '. */
  headers: Record<string, string>
  /** The bytes after the blank line ending the head (all of them, whatever Content-Length says). */
  body: Buffer
}

/** One request on a fresh socket with `Connection: close`; reads until the server closes (bounded). */
export async function rawRequest (base: string, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer, timeoutMs = 10_000): Promise<RawAnswer> {
  const u = new URL(base)
  const lines = [`${method} ${path} HTTP/1.1`, `Host: ${u.host}`, 'Connection: close']
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`)
  if (body !== undefined) lines.push(`Content-Length: ${body.length}`)
  const head = Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1')
  const data = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = []
    const sock = net.connect({ host: u.hostname, port: Number(u.port) })
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`${method} ${path}: no end of answer within ${timeoutMs} ms (got ${Buffer.concat(chunks).length} bytes)`)) }, timeoutMs)
    sock.on('connect', () => { sock.write(body === undefined ? head : Buffer.concat([head, body])) })
    sock.on('data', (d: Buffer) => chunks.push(d))
    sock.on('error', (err) => { clearTimeout(timer); reject(err) })
    sock.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks)) })
  })
  const end = data.indexOf('\r\n\r\n')
  if (end < 0) throw new Error(`${method} ${path}: no complete head in ${JSON.stringify(data.toString('latin1').slice(0, 200))}`)
  const [statusLine = '', ...headerLines] = data.subarray(0, end).toString('latin1').split('\r\n')
  const out: Record<string, string> = {}
  for (const l of headerLines) {
    const i = l.indexOf(':')
    const k = l.slice(0, i).trim().toLowerCase()
    const v = l.slice(i + 1).trim()
    out[k] = out[k] === undefined ? v : `${out[k]}, ${v}`
  }
  return { status: Number(statusLine.split(' ')[1]), headers: out, body: data.subarray(end + 4) }
}

export interface NodeAnswer { status: number; headers: http.IncomingHttpHeaders; text: string; json: unknown }

/** A request through node:http, optionally from `localAddress` (e.g. '127.0.0.2'); bounded by `timeoutMs`. */
export async function httpRequest (url: string, opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; localAddress?: string; timeoutMs?: number } = {}): Promise<NodeAnswer> {
  return await new Promise<NodeAnswer>((resolve, reject) => {
    const req = http.request(url, {
      method: opts.method ?? 'GET',
      headers: { connection: 'close', ...(opts.headers ?? {}) },
      ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }),
      timeout: opts.timeoutMs ?? 10_000
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (d: Buffer) => chunks.push(d))
      res.on('error', reject)
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let json: unknown
        try { json = JSON.parse(text) } catch { json = undefined }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json })
      })
    })
    req.on('timeout', () => req.destroy(new Error(`${opts.method ?? 'GET'} ${url}: timed out`)))
    req.on('error', reject)
    req.end(opts.body)
  })
}

/** A stack-trace line as V8 prints it. */
export const STACK_LINE = /\n\s+at .+\(?.*:\d+:\d+\)?/

/**
 * What is wrong with an answer body, if anything: a stack trace, or one of the internal
 * addresses (`host:port` of a Redis node or sentinel) spelled out.
 */
export function leakIn (text: string, internalPorts: number[]): string | undefined {
  if (STACK_LINE.test(text) || text.includes('    at ')) return 'a stack trace'
  for (const p of internalPorts) {
    if (new RegExp(`(?:127\\.0\\.0\\.1|localhost|::1\\]?)\\s*:\\s*${p}(?!\\d)`).test(text)) return `the internal address :${p}`
  }
  return undefined
}
