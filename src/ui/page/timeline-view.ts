/** The failover timeline, newest first: sentinel events and the gateway's own, as they arrive. */
import type { TimelineEvent } from '../timeline.js'
import { byId, clock, h } from './dom.js'

/** Same as the server's ring (src/ui/timeline.ts TIMELINE_SIZE). */
const KEEP = 200

const seen = new Set<number>()

/** Replaces the list (a new connection: the server sent what it keeps). */
export function resetTimeline (events: TimelineEvent[]): void {
  seen.clear()
  byId('timeline').replaceChildren()
  for (const e of events) addEvent(e)
}

/** Adds one event on top (duplicates, after a reconnection, are ignored). */
export function addEvent (e: TimelineEvent): void {
  if (seen.has(e.seq)) return
  seen.add(e.seq)
  const list = byId('timeline')
  const item = h('li', { class: `event ${e.level} ${e.source}`, 'data-kind': e.kind },
    h('time', { datetime: e.at }, clock(e.at)),
    h('span', { class: 'source' }, e.source === 'sentinel' ? `sentinel ${e.sentinel ?? ''}` : 'gateway'),
    h('strong', { class: 'kind' }, e.kind),
    h('span', { class: 'detail' }, e.detail))
  list.prepend(item)
  while (list.children.length > KEEP) list.lastElementChild?.remove()
  byId('timeline-count').textContent = `${list.children.length} event(s)`
}
