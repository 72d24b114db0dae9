/**
 * A Server-Sent Events client for tests: reads a subscription stream (node:http, one connection
 * per stream, never pooled), keeps every `data:` line and counts comments, and waits for a line
 * matching a predicate (bounded). node:http rather than fetch: undici opens a spare connection
 * after an aborted stream, which a closing gateway then waits for until headersTimeout.
 */
import http from 'node:http'

export interface SseClient {
  status: number
  headers: http.IncomingHttpHeaders
  /** Every `data:` payload so far, in order. */
  data: string[]
  /** `:` comment lines seen (heartbeats). */
  comments: number
  /** Resolves when the stream ends (by either side). */
  ended: Promise<void>
  /** The first data line (already received or to come) for which `pred` is true; rejects after `ms`. */
  waitFor(pred: (data: string) => boolean, ms?: number, what?: string): Promise<string>
  close(): void
}

/** A refused stream: the status, headers and body of the answer. */
export interface Refused { status: number; headers: http.IncomingHttpHeaders; text: string; json(): unknown }

const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity })

/** Opens `url` as an event stream (POST like @upstash/redis unless `method` says GET). A non-200 answer: Refused. */
export async function openSse (url: string, headers: Record<string, string> = {}, method: 'GET' | 'POST' = 'POST'): Promise<SseClient | Refused> {
  return await new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers: { accept: 'text/event-stream', ...headers } }, res => {
      res.setEncoding('utf8')
      if (res.statusCode !== 200) {
        let text = ''
        res.on('data', (d: string) => { text += d })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) }))
        return
      }
      const data: string[] = []
      const waiters = new Set<() => void>()
      const wake = (): void => { for (const w of [...waiters]) w() }
      let buffer = ''
      const client: SseClient = {
        status: 200,
        headers: res.headers,
        data,
        comments: 0,
        ended: new Promise<void>(resolve => { res.on('close', () => { wake(); resolve() }) }),
        async waitFor (pred, ms = 5000, what = 'a matching event') {
          const deadline = Date.now() + ms
          for (;;) {
            const hit = data.find(pred)
            if (hit !== undefined) return hit
            const left = deadline - Date.now()
            if (left <= 0) throw new Error(`no ${what} within ${ms} ms; got ${JSON.stringify(data.slice(-10).map(d => d.length > 200 ? `${d.slice(0, 200)}...` : d))}`)
            await new Promise<void>(resolve => {
              const done = (): void => { waiters.delete(done); clearTimeout(timer); resolve() }
              const timer = setTimeout(done, left)
              waiters.add(done)
            })
          }
        },
        close () { req.destroy() }
      }
      res.on('data', (d: string) => {
        buffer += d
        const lines = buffer.split('\n')
        buffer = lines.pop() ?? ''
        for (const line of lines) {
          if (line.startsWith('data: ')) data.push(line.slice(6))
          else if (line.startsWith(':')) client.comments++
        }
        wake()
      })
      res.on('error', () => {})
      resolve(client)
    })
    req.on('error', reject)
    req.end(method === 'POST' ? '[]' : undefined)
  })
}

/** Narrows openSse's answer to a stream, failing with the error body otherwise. */
export async function sse (url: string, headers: Record<string, string> = {}, method: 'GET' | 'POST' = 'POST'): Promise<SseClient> {
  const r = await openSse(url, headers, method)
  if ('waitFor' in r) return r
  throw new Error(`expected an event stream, got ${r.status} ${r.text}`)
}
