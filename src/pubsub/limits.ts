/**
 * Open streams per token and per process: a stream holds a socket and a buffer until its client
 * leaves, so one token must not be able to hold them all.
 */

/** Why a stream could not be opened. */
export type StreamRefusal = 'token' | 'process'

export class StreamLimits {
  private readonly perToken = new Map<string, number>()
  private total = 0

  /** `maxPerToken`: PUBSUB_MAX_STREAMS_PER_TOKEN; `maxTotal`: PUBSUB_MAX_STREAMS. */
  constructor (readonly maxPerToken: number, readonly maxTotal: number) {}

  /** Open streams of the process. */
  get open (): number { return this.total }

  /** Takes a slot for a stream of `token` (a token's name): the function that gives it back (once), or why not. */
  acquire (token: string): (() => void) | StreamRefusal {
    const mine = this.perToken.get(token) ?? 0
    if (mine >= this.maxPerToken) return 'token'
    if (this.total >= this.maxTotal) return 'process'
    this.perToken.set(token, mine + 1)
    this.total++
    let released = false
    return () => {
      if (released) return
      released = true
      this.total--
      const left = (this.perToken.get(token) ?? 1) - 1
      if (left <= 0) this.perToken.delete(token)
      else this.perToken.set(token, left)
    }
  }
}
