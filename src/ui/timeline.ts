/**
 * The failover timeline of the operations page: the last TIMELINE_SIZE events, sentinel events
 * (`+sdown`, `+switch-master`, ...) and the gateway's own (master changed, writes held, breaker
 * opened...), in memory only. A ring: recording is O(1) and memory stays bounded whatever happens.
 */
import { EventEmitter } from 'node:events'

/** Events kept. */
export const TIMELINE_SIZE = 200

/** `sentinel`: published by a sentinel on its event channel; `gateway`: seen by this gateway. */
export type EventSource = 'sentinel' | 'gateway'
/** How the page marks the event: `bad` (something failed), `warn` (degraded, held), `info`. */
export type EventLevel = 'info' | 'warn' | 'bad'

export interface TimelineEvent {
  /** Increases by one per event recorded in this process (a page asks for events after the last it saw). */
  seq: number
  /** ISO time the gateway recorded it. */
  at: string
  source: EventSource
  /** The sentinel's channel (`+switch-master`) or the gateway's event name (`master-changed`). */
  kind: string
  /** One line a person reads: the sentinel's message, or what the gateway saw. */
  detail: string
  level: EventLevel
  /** The sentinel that published it (`host:port`), for sentinel events. */
  sentinel?: string
}

/** Emits 'event' (TimelineEvent) for every event recorded. */
export class Timeline extends EventEmitter {
  private readonly ring: Array<TimelineEvent | undefined> = new Array(TIMELINE_SIZE)
  private next = 1

  /** Records one event now; returns it. */
  add (source: EventSource, kind: string, detail: string, level: EventLevel = 'info', sentinel?: string): TimelineEvent {
    const e: TimelineEvent = { seq: this.next++, at: new Date().toISOString(), source, kind, detail, level, ...(sentinel === undefined ? {} : { sentinel }) }
    this.ring[e.seq % TIMELINE_SIZE] = e
    this.emit('event', e)
    return e
  }

  /** Sequence number of the last event recorded (0: none yet). */
  get lastSeq (): number { return this.next - 1 }

  /** Events kept with seq > `afterSeq`, oldest first. */
  since (afterSeq = 0): TimelineEvent[] {
    const out: TimelineEvent[] = []
    const first = Math.max(afterSeq + 1, this.next - TIMELINE_SIZE, 1)
    for (let seq = first; seq < this.next; seq++) out.push(this.ring[seq % TIMELINE_SIZE]!)
    return out
  }
}
