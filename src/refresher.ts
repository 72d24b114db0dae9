/**
 * Single-flight, coalescing refreshes for a topology (Sentinel or Cluster): at most one refresh
 * runs; requests made meanwhile are merged into one more run right after it; runs closer together
 * than `minGapMs` are delayed, so callers waiting in a loop cannot make it spin.
 */
export class Refresher {
  private running: Promise<void> | null = null
  private again = false
  private lastStart = 0
  private delayed: NodeJS.Timeout | null = null
  private closed = false

  /**
   * @param run one refresh, given the time it started; its errors go to `onError`
   * @param onError a failed run (the state stays as it was)
   */
  constructor (private readonly run: (startedAt: number) => Promise<void>,
    private readonly onError: (err: Error) => void, private readonly minGapMs: number) {}

  /** Runs a refresh now, or right after the one in flight (coalesced). */
  request (): void {
    if (this.closed) return
    if (this.running !== null) { this.again = true; return }
    const wait = this.lastStart + this.minGapMs - Date.now()
    if (wait > 0) {
      this.delayed ??= setTimeout(() => { this.delayed = null; this.request() }, wait)
      return
    }
    void this.now()
  }

  /** One refresh, or the one in flight (then one more after it). Never throws. */
  async now (): Promise<void> {
    if (this.running !== null) { this.again = true; return await this.running }
    this.lastStart = Date.now()
    this.running = this.run(this.lastStart)
      .catch((err: unknown) => this.onError(err as Error))
      .finally(() => {
        this.running = null
        if (this.again && !this.closed) { this.again = false; this.request() }
      })
    return await this.running
  }

  close (): void {
    this.closed = true
    if (this.delayed !== null) clearTimeout(this.delayed)
  }
}
