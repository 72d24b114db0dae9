/**
 * The deployment as the gateway sees it: a picture (SVG: master, replicas with their replication
 * links, sentinels) and the same facts as tables, which are what a screen reader and a phone read.
 */
import type { PageSnapshot } from '../snapshot.js'
import { byId, bytes, fill, h, num, s } from './dom.js'

type Replica = PageSnapshot['topology']['replicas'][number]
/** "host:port". */
export const key = (a: { host: string; port: number }): string => `${a.host}:${a.port}`

/** Width of the pictures' viewBox, and of one node box. */
export const W = 720
const NODE_W = 190
export const NODE_H = 78

/** Renders the summary line, the picture and the tables. */
export function renderDeployment (snap: PageSnapshot): void {
  const t = snap.topology
  const master = t.master === null ? null : key(t.master)
  const breakerOf = new Map(t.breakers.map(b => [b.node, b.state]))
  fill(byId('dep-kind'), 'master')
  fill(byId('master-name'), master ?? 'unknown')
  byId('master-name').dataset.master = master ?? ''
  byId('shards-wrap').hidden = true
  byId('sentinels-wrap').hidden = false
  const held = t.failoverInProgress ? 'held: failover in progress' : snap.writes.attached < snap.writes.waitCount ? 'held: waiting for replicas to attach' : 'accepted'
  fill(byId('summary'),
    h('span', {}, `Master set "${t.masterName}", config epoch ${t.configEpoch}. `),
    h('span', {}, `Writes need ${snap.writes.waitCount} replica acknowledgement(s) (WAIT, WRITE_DURABILITY=${snap.writes.durability}); ${snap.writes.attached} attached. Writes ${held}.`),
    t.master?.confirmed === false ? h('strong', { class: 'bad-text' }, ' The master does not confirm its role.') : null,
    t.master?.note === undefined ? null : h('span', {}, ` Note: ${t.master.note}.`))
  fill(byId('picture'), picture(snap, master, breakerOf))
  fill(byId('nodes-body'),
    ...(t.master === null ? [] : [nodeRow(master!, 'master', t.master.confirmed ? 'ok' : 'bad', t.master.confirmed ? 'confirmed' : 'role not confirmed', '–', '–', breakerOf.get(master!), snap.readsLastMinute[master!])]),
    ...t.replicas.map(r => nodeRow(key(r), 'replica', r.healthy ? 'ok' : 'bad', r.healthy ? 'healthy' : `unhealthy: ${r.reason ?? 'unknown'}`,
      r.attached ? 'yes' : 'no', lag(r), breakerOf.get(key(r)), snap.readsLastMinute[key(r)])))
  fill(byId('sentinels-body'), ...snap.sentinels.map(st => h('tr', { 'data-sentinel': key(st) },
    h('th', { scope: 'row' }, key(st)),
    h('td', {}, badge(st.reachable ? 'ok' : 'bad', st.reachable ? 'reachable' : `unreachable${st.lastError === undefined ? '' : `: ${st.lastError}`}`)),
    h('td', {}, st.names?.master ?? '–'),
    h('td', {}, st.names === null ? '–' : String(st.names.epoch)))))
}

/** "1.2 KB, 0 s" ("–" when not attached). */
export const lag = (r: Replica): string => r.lagBytes === null ? '–' : `${bytes(r.lagBytes)}, ${num(r.lagSeconds, 0)} s`

export function badge (kind: 'ok' | 'bad' | 'warn', text: string): HTMLElement {
  return h('span', { class: `badge ${kind}` }, text)
}

/** One row of the data nodes table. */
export function nodeRow (node: string, role: string, kind: 'ok' | 'bad', state: string, attached: string, lagText: string, breaker: string | undefined, reads: number | undefined): HTMLElement {
  return h('tr', { 'data-node': node, 'data-role': role, 'data-health': kind === 'ok' ? 'healthy' : 'unhealthy' },
    h('th', { scope: 'row' }, node),
    h('td', {}, role),
    h('td', {}, badge(kind, state)),
    h('td', {}, attached),
    h('td', {}, lagText),
    h('td', {}, badge(breaker === 'open' ? 'bad' : breaker === 'half-open' ? 'warn' : 'ok', breaker ?? 'closed')),
    h('td', { class: 'num' }, String(reads ?? 0)))
}

/** The picture: master on top, replicas below with their links, sentinels at the bottom. */
function picture (snap: PageSnapshot, master: string | null, breakerOf: Map<string, string>): SVGElement {
  const t = snap.topology
  const reps = t.replicas
  const sentinels = snap.sentinels
  const height = 330
  const svg = s('svg', { viewBox: `0 0 ${W} ${height}`, role: 'img', 'aria-labelledby': 'picture-title', class: 'picture' })
  const healthy = reps.filter(r => r.healthy).length
  svg.append(s('title', { id: 'picture-title' }, `Master ${master ?? 'unknown'}; ${reps.length} replica(s), ${healthy} healthy; ${sentinels.filter(x => x.reachable).length} of ${sentinels.length} sentinels reachable`))
  const mx = W / 2 - NODE_W / 2
  const my = 14
  const slots = Math.max(reps.length, 1)
  const rw = Math.min(NODE_W, (W - 12 * (slots + 1)) / slots)
  const gap = (W - slots * rw) / (slots + 1)
  reps.forEach((r, i) => {
    const x = gap + i * (rw + gap)
    const y = 150
    svg.append(s('line', {
      x1: W / 2, y1: my + NODE_H, x2: x + rw / 2, y2: y,
      class: `link ${r.attached ? 'attached' : 'detached'} ${r.healthy ? '' : 'unhealthy'}`
    }))
    const label = r.attached ? `lag ${bytes(r.lagBytes)}` : 'not attached'
    svg.append(s('text', { x: (W / 2 + x + rw / 2) / 2 + 6, y: (my + NODE_H + y) / 2, class: 'link-label' }, label))
  })
  svg.append(nodeBox(mx, my, NODE_W, 'master', master ?? 'unknown', t.master?.confirmed === false ? 'role not confirmed' : t.failoverInProgress ? 'failover in progress' : 'writes here',
    `breaker ${breakerOf.get(master ?? '') ?? 'closed'} · ${snap.readsLastMinute[master ?? ''] ?? 0} reads/min`, t.master?.confirmed === false || t.failoverInProgress ? 'warn' : 'ok'))
  reps.forEach((r, i) => {
    const x = gap + i * (rw + gap)
    svg.append(nodeBox(x, 150, rw, 'replica', key(r), r.healthy ? `healthy · lag ${num(r.lagSeconds, 0)} s` : (r.reason ?? 'unhealthy'),
      `breaker ${breakerOf.get(key(r)) ?? 'closed'} · ${snap.readsLastMinute[key(r)] ?? 0} reads/min`, r.healthy ? 'ok' : 'bad'))
  })
  const sw = Math.min(200, (W - 12 * (sentinels.length + 1)) / Math.max(sentinels.length, 1))
  const sgap = (W - sentinels.length * sw) / (sentinels.length + 1)
  sentinels.forEach((st, i) => {
    const x = sgap + i * (sw + sgap)
    const y = 262
    const g = s('g', { class: `node sentinel ${st.reachable ? 'ok' : 'bad'}` })
    g.append(s('rect', { x, y, width: sw, height: 54, rx: 27 }))
    g.append(s('text', { x: x + sw / 2, y: y + 22, 'text-anchor': 'middle', class: 'name' }, `sentinel ${key(st)}`))
    g.append(s('text', { x: x + sw / 2, y: y + 40, 'text-anchor': 'middle', class: 'detail' },
      st.reachable ? `names ${st.names?.master ?? '?'} · epoch ${st.names?.epoch ?? '?'}` : 'unreachable'))
    svg.append(g)
  })
  return svg
}

/** One node of a picture: role, name, two lines of detail, coloured by `kind`. */
export function nodeBox (x: number, y: number, w: number, role: string, name: string, line1: string, line2: string, kind: 'ok' | 'warn' | 'bad'): SVGElement {
  const g = s('g', { class: `node ${role} ${kind}` })
  const chars = Math.floor(w / 6.3)
  g.append(s('rect', { x, y, width: w, height: NODE_H, rx: 8 }))
  g.append(s('text', { x: x + 10, y: y + 20, class: 'role' }, role.toUpperCase()))
  g.append(s('text', { x: x + 10, y: y + 38, class: 'name' }, name))
  g.append(s('text', { x: x + 10, y: y + 55, class: 'detail' }, clip(line1, chars)))
  g.append(s('text', { x: x + 10, y: y + 70, class: 'detail' }, clip(line2, chars)))
  return g
}

export const clip = (text: string, n: number): string => text.length <= n ? text : `${text.slice(0, n - 1)}…`
