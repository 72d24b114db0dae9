/**
 * One Server-Sent Events stream of subscriptions, in the format of @upstash/redis's Subscriber
 * (one `data:` line per event, fields separated by commas, as Upstash sends them):
 *   data: subscribe,<channel>,<count>          data: psubscribe,<pattern>,<count>
 *   data: message,<channel>,<message>          data: pmessage,<pattern>,<channel>,<message>
 *   data: unsubscribe,<channel>,<count>        data: punsubscribe,<pattern>,<count>  (the gateway ends the stream)
 *   data: ssubscribe / smessage / sunsubscribe  as the first column, for sharded channels
 *   data: gap,<reason>,<ISO time>              messages published since that time may have been missed
 * plus `: ping` comments every heartbeat. Text is UTF-8; a field holding a line break (which would
 * end the `data:` line and let a publisher forge events) is sent as a JSON string instead.
 *
 * Memory is bounded: what the client has not read yet (this stream's buffer plus the socket's) may
 * not exceed `maxBufferedBytes`; a client past it is disconnected, never buffered for.
 */
import type { ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import type { GapReason, HubListener, HubMessage } from './hub.js'
import type { SubscriptionKind } from './rights.js'

export interface StreamOptions {
  /** Interval of the `: ping` comments (PUBSUB_HEARTBEAT_MS). */
  heartbeatMs: number
  /** Most bytes written and not yet read by the client (PUBSUB_MAX_BUFFERED_BYTES). */
  maxBufferedBytes: number
}

/** How a stream ended: the client left, it was too slow, or the gateway ended it (shutdown). */
export type EndReason = 'client-closed' | 'slow-client' | 'server'

const LINE_BREAK = /[\r\n]/
const HEARTBEAT = Buffer.from(': ping\n\n')

/** A field of a `data:` line: as is, or as a JSON string when it holds a line break. */
export function field (text: string): string {
  return LINE_BREAK.test(text) ? JSON.stringify(text) : text
}

/** The `data:` event of one message (the same bytes for every stream it goes to). */
export function messageFrame (m: HubMessage): Buffer {
  const channel = field(m.channel.toString('utf8'))
  const message = field(m.message.toString('utf8'))
  const line = m.pattern !== undefined ? `pmessage,${field(m.pattern)},${channel},${message}` : `${m.sharded === true ? 's' : ''}message,${channel},${message}`
  return Buffer.from(`data: ${line}\n\n`)
}

export class SseStream implements HubListener {
  /** The response body (Fastify pipes it to the socket). */
  readonly body = new Readable({ read () {} })
  private readonly names: string[] = []
  private readonly timer: NodeJS.Timeout
  private ended = false

  /** `onEnd` runs once, whatever ends the stream. */
  constructor (private readonly kind: SubscriptionKind, private readonly res: ServerResponse,
    private readonly opts: StreamOptions, private readonly onEnd: (why: EndReason) => void) {
    this.timer = setInterval(() => this.push(HEARTBEAT), opts.heartbeatMs)
    this.timer.unref()
    this.body.on('close', () => this.finish('client-closed'))
  }

  /** The confirmations, one per name as Redis sends them (the count of distinct subscriptions so far). */
  confirm (names: readonly string[]): void {
    for (const n of names) {
      if (!this.names.includes(n)) this.names.push(n)
      this.push(Buffer.from(`data: ${this.kind},${field(n)},${this.names.length}\n\n`))
    }
  }

  deliver (m: HubMessage): void {
    m.frame ??= messageFrame(m)
    this.push(m.frame)
  }

  gap (reason: GapReason, since: Date): void {
    this.push(Buffer.from(`data: gap,${reason},${since.toISOString()}\n\n`))
  }

  /** Ends the stream cleanly: an unsubscribe confirmation per name, then the end of the response. */
  end (): void {
    if (this.ended) return
    const un = { subscribe: 'unsubscribe', psubscribe: 'punsubscribe', ssubscribe: 'sunsubscribe' }[this.kind]
    this.names.forEach((n, i) => this.push(Buffer.from(`data: ${un},${field(n)},${this.names.length - i - 1}\n\n`)))
    this.body.push(null)
    this.finish('server')
  }

  private push (frame: Buffer): void {
    if (this.ended) return
    // Not read yet: queued in this stream, and in the response and socket buffers.
    if (this.body.readableLength + this.res.writableLength + frame.length > this.opts.maxBufferedBytes) {
      this.finish('slow-client')
      this.res.destroy()
      return
    }
    this.body.push(frame)
  }

  private finish (why: EndReason): void {
    if (this.ended) return
    this.ended = true
    clearInterval(this.timer)
    this.onEnd(why)
  }
}
