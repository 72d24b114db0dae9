/**
 * The operations page: asks for a token when the gateway wants one (kept in sessionStorage, for
 * this tab only, sent as an Authorization header, never in a URL), then follows /ui/events.
 */
import type { PageSnapshot } from '../snapshot.js'
import type { TimelineEvent } from '../timeline.js'
import type { TrafficPoint } from '../traffic.js'
import { renderDeployment } from './deployment.js'
import { byId, clock } from './dom.js'
import { renderCluster } from './shards.js'
import { openStream, type StreamState } from './stream.js'
import { addEvent, resetTimeline } from './timeline-view.js'
import { addPoint, renderTraffic, resetTraffic } from './traffic-view.js'

const TOKEN_KEY = 'skv-ops-token'
const EVENTS_URL = '/ui/events'

let stream: { close: () => void } | null = null

function connect (): void {
  stream?.close()
  const token = sessionStorage.getItem(TOKEN_KEY)
  byId('forget').hidden = token === null
  stream = openStream(EVENTS_URL, token, { event: onEvent, state: onState })
}

function onEvent (name: string, data: unknown): void {
  if (name === 'hello') {
    const hello = data as { snapshot: PageSnapshot; timeline: TimelineEvent[]; traffic: TrafficPoint[] }
    showLive()
    resetTimeline(hello.timeline)
    resetTraffic(hello.traffic)
    showSnapshot(hello.snapshot)
  } else if (name === 'snapshot') {
    showSnapshot(data as PageSnapshot)
  } else if (name === 'timeline') {
    addEvent(data as TimelineEvent)
  }
}

function showSnapshot (snap: PageSnapshot): void {
  if (snap.traffic !== null) addPoint(snap.traffic)
  const w = snap.worker
  byId('worker').textContent = w.of > 1
    ? `Worker ${w.id ?? '?'} of ${w.of} (pid ${w.pid}): each worker has its own view; this page follows this one.`
    : `Gateway pid ${w.pid}`
  byId('updated').textContent = `updated ${clock(snap.at)}`
  if (snap.shards === null) renderDeployment(snap)
  else renderCluster(snap, snap.shards)
  renderTraffic()
}

function onState (state: StreamState, detail: string): void {
  const status = byId('status')
  status.dataset.state = state
  const text: Record<StreamState, string> = {
    connecting: 'Connecting…',
    live: 'Live',
    retrying: `Disconnected: ${detail}`,
    unauthorized: 'A token is needed',
    forbidden: 'This token lacks the operations right (o)'
  }
  status.textContent = text[state]
  if (state === 'unauthorized' || state === 'forbidden') askToken(state === 'forbidden' ? `${text[state]}: ${detail}` : sessionStorage.getItem(TOKEN_KEY) === null ? '' : `The token was refused: ${detail}`)
}

function showLive (): void {
  byId('login').hidden = true
  byId('live').hidden = false
}

function askToken (error: string): void {
  sessionStorage.removeItem(TOKEN_KEY)
  byId('forget').hidden = true
  byId('live').hidden = true
  byId('login').hidden = false
  byId('login-error').textContent = error
  byId<HTMLInputElement>('token').focus()
}

byId<HTMLFormElement>('login-form').addEventListener('submit', e => {
  e.preventDefault()
  const input = byId<HTMLInputElement>('token')
  const token = input.value.trim()
  if (token === '') return
  sessionStorage.setItem(TOKEN_KEY, token)
  input.value = ''
  byId('login-error').textContent = ''
  connect()
})

byId('forget').addEventListener('click', () => {
  stream?.close()
  stream = null
  askToken('')
  onStateText('Token forgotten')
})

function onStateText (text: string): void {
  byId('status').dataset.state = 'unauthorized'
  byId('status').textContent = text
}

// With tokens configured and none kept for this tab: ask first (no 401 to provoke).
const needsToken = document.querySelector('meta[name="skv-auth"]')?.getAttribute('content') === 'token'
if (needsToken && sessionStorage.getItem(TOKEN_KEY) === null) {
  askToken('')
  onStateText('A token is needed')
} else {
  connect()
}
