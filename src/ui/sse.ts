/**
 * One Server-Sent Events stream on a raw Node response. Backpressure by the socket's buffer: while
 * the client does not read, nothing more is queued (`congested`); the owner catches it up on
 * 'drain' (snapshots are superseded anyway; timeline events are resent from the ring).
 */
import type { ServerResponse } from 'node:http'

export class SseStream {
  private closed = false
  /** Set while the socket's buffer is full: writes are skipped until it drains. */
  congested = false
  /** The last timeline event written to this client. */
  lastSeq = 0

  constructor (private readonly res: ServerResponse, onDrain: (s: SseStream) => void, onClose: (s: SseStream) => void) {
    res.on('drain', () => { this.congested = false; onDrain(this) })
    res.on('close', () => { this.closed = true; onClose(this) })
  }

  get open (): boolean { return !this.closed && !this.res.writableEnded }

  /** Writes one frame (from sseFrame); false when skipped (closed or congested). */
  write (frame: string): boolean {
    if (!this.open || this.congested) return false
    if (!this.res.write(frame)) this.congested = true
    return true
  }

  /** Ends the stream (shutdown). */
  end (): void {
    if (this.open) this.res.end()
  }
}

/** One event: `data` as JSON on one line (JSON escapes every newline). Built once for every page. */
export function sseFrame (event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
}
