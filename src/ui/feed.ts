/**
 * The operations page's live feed in one process: the timeline (fed by watch.ts), traffic sampled
 * from the registry once a second (traffic.ts), and the event streams of the pages connected.
 * One timer for everything: each second it samples, builds ONE snapshot and writes it to every
 * page (so at most one snapshot per second per page); timeline events go out as they happen.
 */
import type { ServerResponse } from 'node:http'
import type { Registry } from 'prom-client'
import type { NearCache } from '../cache/near-cache.js'
import { pageSnapshot, READS_WINDOW_S, type PageSnapshot, type SnapshotSources } from './snapshot.js'
import { sseFrame, SseStream } from './sse.js'
import { Timeline, type TimelineEvent } from './timeline.js'
import { TrafficSampler } from './traffic.js'
import { watchServices } from './watch.js'

/** Snapshot and sample period. */
export const TICK_MS = 1000
/** Pages one process streams to at once (each costs a write per second); more get 503. */
export const MAX_PAGES = 64

export interface FeedSources extends SnapshotSources {
  registry: Registry
  cache?: NearCache | undefined
  log: { warn: (obj: object, msg: string) => void }
}

export class OpsFeed {
  readonly timeline = new Timeline()
  readonly traffic: TrafficSampler
  private readonly streams = new Set<SseStream>()
  private readonly watcher: { poll: () => void; stop: () => void }
  private readonly timer: NodeJS.Timeout
  private ticking = false
  /** A failing sample is logged once, not every second. */
  private failing = false
  private latestPoint: PageSnapshot['traffic'] = null

  constructor (private readonly sources: FeedSources) {
    this.traffic = new TrafficSampler(sources.registry)
    this.watcher = watchServices(this.timeline, { topology: sources.topology, breakers: sources.breakers, cache: sources.cache, durability: sources.gatewayConfig.durability })
    this.timeline.on('event', (e: TimelineEvent) => {
      const frame = sseFrame('timeline', e)
      for (const s of this.streams) this.sendEvent(s, e, frame)
    })
    this.timer = setInterval(() => { void this.tick() }, TICK_MS)
    this.timer.unref()
  }

  /** Pages connected to this process. */
  get clients (): number { return this.streams.size }

  /** False when MAX_PAGES pages are connected already. */
  get accepting (): boolean { return this.streams.size < MAX_PAGES }

  /**
   * Starts an event stream on `res` (headers already written): `hello` (the worker, the timeline
   * and the traffic kept, the current snapshot), then `snapshot` each second and `timeline` events.
   */
  attach (res: ServerResponse): void {
    const stream = new SseStream(res, s => this.catchUp(s), s => this.streams.delete(s))
    this.streams.add(stream)
    const snapshot = this.snapshot(this.latestPoint)
    const events = this.timeline.since(0)
    stream.lastSeq = this.timeline.lastSeq
    stream.write(sseFrame('hello', { snapshot, timeline: events, traffic: this.traffic.points() }))
  }

  /** Ends every stream and stops the timer (the app is closing). */
  close (): void {
    clearInterval(this.timer)
    this.watcher.stop()
    for (const s of this.streams) s.end()
    this.streams.clear()
  }

  private snapshot (point: PageSnapshot['traffic']): PageSnapshot {
    return pageSnapshot(this.sources, this.traffic.readsOver(READS_WINDOW_S), point, this.timeline.lastSeq)
  }

  private async tick (): Promise<void> {
    if (this.ticking) return
    this.ticking = true
    try {
      this.watcher.poll()
      const point = await this.traffic.sample()
      this.latestPoint = point
      this.failing = false
      // Traffic is sampled always (a page opened later shows the last 5 minutes); snapshots only for pages.
      if (this.streams.size === 0) return
      const frame = sseFrame('snapshot', this.snapshot(point))
      for (const s of this.streams) s.write(frame)
    } catch (err) {
      // A collect() that throws must not stop the page's feed.
      if (!this.failing) this.sources.log.warn({ err: (err as Error).message }, 'operations page: traffic sample failed')
      this.failing = true
    } finally {
      this.ticking = false
    }
  }

  private sendEvent (s: SseStream, e: TimelineEvent, frame = sseFrame('timeline', e)): void {
    if (e.seq <= s.lastSeq) return
    if (s.write(frame)) s.lastSeq = e.seq
  }

  /** After a full buffer drained: the events it missed (those still kept). */
  private catchUp (s: SseStream): void {
    for (const e of this.timeline.since(s.lastSeq)) this.sendEvent(s, e)
  }
}
