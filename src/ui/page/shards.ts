/**
 * The deployment in Redis Cluster mode: one column per shard in the picture (its slot ranges,
 * master, replicas with their replication links), a shards table (slots, master, replicas, the
 * WAIT count pinned for the shard, whether its writes are held, its last failover) and every node
 * in the data nodes table, tagged with its shard. No sentinels in this mode: their table is hidden.
 */
import type { PageSnapshot } from '../snapshot.js'
import { badge, clip, key, lag, NODE_H, nodeBox, nodeRow, W } from './deployment.js'
import { byId, bytes, clock, fill, h, num, s } from './dom.js'

type Shard = NonNullable<PageSnapshot['shards']>[number]

/** Hash slots of a Redis Cluster. */
const SLOTS = 16384

/** Renders the summary line, the picture and the tables for `shards`. */
export function renderCluster (snap: PageSnapshot, shards: readonly Shard[]): void {
  const breakerOf = new Map(snap.topology.breakers.map(b => [b.node, b.state]))
  const durability = snap.writes.durability
  fill(byId('dep-kind'), 'Redis Cluster,')
  fill(byId('master-name'), `${shards.length} shard(s)`)
  byId('master-name').dataset.master = ''
  byId('shards-wrap').hidden = false
  byId('sentinels-wrap').hidden = true
  const covered = shards.reduce((n, sh) => n + slotCount(sh.slots), 0)
  const held = shards.filter(sh => writesHeld(sh, durability) !== null)
  fill(byId('summary'),
    h('span', {}, `Redis Cluster: ${shards.length} shard(s) serving ${covered} of ${SLOTS} hash slots. `),
    h('span', {}, `Writes on each shard wait for its own replicas (WAIT count per shard, WRITE_DURABILITY=${durability}). `),
    covered < SLOTS ? h('strong', { class: 'bad-text' }, `${SLOTS - covered} hash slots are served by no shard. `) : null,
    h('span', {}, held.length === 0 ? 'Writes accepted on every shard.' : `Writes held on shard ${held.map(sh => sh.id).join(', ')}.`))
  fill(byId('picture'), picture(snap, shards, breakerOf))
  fill(byId('shards-body'), ...shards.map(sh => shardRow(sh, durability)))
  fill(byId('nodes-body'), ...shards.flatMap(sh => {
    const rows: HTMLElement[] = []
    if (sh.master !== null) {
      const m = key(sh.master)
      rows.push(tagged(nodeRow(m, 'master', sh.master.confirmed ? 'ok' : 'bad', sh.master.confirmed ? 'confirmed' : 'role not confirmed', '–', '–', breakerOf.get(m), snap.readsLastMinute[m]), sh.id))
    }
    for (const r of sh.replicas) {
      rows.push(tagged(nodeRow(key(r), 'replica', r.healthy ? 'ok' : 'bad', r.healthy ? 'healthy' : `unhealthy: ${r.reason ?? 'unknown'}`,
        r.attached ? 'yes' : 'no', lag(r), breakerOf.get(key(r)), snap.readsLastMinute[key(r)]), sh.id))
    }
    return rows
  }))
}

/** Slots in ranges such as `0-5460` or `5461`. */
function slotCount (ranges: readonly string[]): number {
  return ranges.reduce((n, r) => {
    const [a, b] = r.split('-').map(Number)
    return n + (b === undefined ? 1 : b - a! + 1)
  }, 0)
}

/** The WAIT count of a write to this shard with WRITE_DURABILITY `durability`. */
const waitCount = (sh: Shard, durability: string): number => durability === 'none' ? 0 : durability === 'all' ? sh.allReplicas : sh.requiredReplicas

/** Why writes to this shard wait now, or null. */
function writesHeld (sh: Shard, durability: string): string | null {
  if (sh.master === null) return 'no master known'
  if (sh.failoverInProgress) return 'failover in progress'
  if (!sh.master.confirmed) return 'master role not confirmed'
  const short = waitCount(sh, durability) - sh.replicas.filter(r => r.attached).length
  return short > 0 ? `waiting for ${short} replica(s) to attach` : null
}

function shardRow (sh: Shard, durability: string): HTMLElement {
  const held = writesHeld(sh, durability)
  const healthy = sh.replicas.filter(r => r.healthy).length
  const fo = sh.lastFailover
  return h('tr', { 'data-shard': sh.id, 'data-master': sh.master === null ? '' : key(sh.master) },
    h('th', { scope: 'row' }, sh.id),
    h('td', {}, sh.slots.join(', ') || 'none'),
    h('td', {}, sh.master === null ? 'unknown' : key(sh.master), ' ', sh.master?.confirmed === false ? badge('bad', 'not confirmed') : null),
    h('td', {}, badge(healthy === sh.replicas.length && healthy > 0 ? 'ok' : healthy > 0 ? 'warn' : 'bad', `${healthy}/${sh.replicas.length} healthy`)),
    h('td', { class: 'num' }, String(waitCount(sh, durability))),
    h('td', {}, badge(held === null ? 'ok' : 'warn', held === null ? 'accepted' : `held: ${held}`)),
    h('td', { 'data-failover': fo === null ? '' : key(fo.to) }, ...(fo === null ? ['–'] : [clock(fo.at), h('br'), `${fo.from === null ? '?' : key(fo.from)} → ${key(fo.to)}`])))
}

/** A data nodes row of shard `id`: its role cell says which shard. */
function tagged (row: HTMLElement, id: string): HTMLElement {
  row.dataset.shard = id
  const role = (row as HTMLTableRowElement).cells[1]
  if (role !== undefined) role.textContent = `${role.textContent ?? ''} of ${id}`
  return row
}

/** One column per shard: its slots on top, the master, its replicas below with their links. */
function picture (snap: PageSnapshot, shards: readonly Shard[], breakerOf: Map<string, string>): SVGElement {
  const height = 26 + NODE_H + 56 + NODE_H + 12
  const svg = s('svg', { viewBox: `0 0 ${W} ${height}`, role: 'img', 'aria-labelledby': 'picture-title', class: 'picture' })
  const reps = shards.flatMap(sh => sh.replicas)
  svg.append(s('title', { id: 'picture-title' }, `Redis Cluster: ${shards.length} shard(s), masters ${shards.map(sh => sh.master === null ? 'unknown' : key(sh.master)).join(', ')}; ${reps.length} replica(s), ${reps.filter(r => r.healthy).length} healthy`))
  const colW = W / Math.max(shards.length, 1)
  const pad = 6
  const reads = (k: string): string => `breaker ${breakerOf.get(k) ?? 'closed'} · ${snap.readsLastMinute[k] ?? 0} reads/min`
  shards.forEach((sh, i) => {
    const x0 = i * colW + pad
    const w = colW - 2 * pad
    const chars = Math.floor(w / 6.3)
    svg.append(s('text', { x: x0 + w / 2, y: 16, 'text-anchor': 'middle', class: 'shard-label' }, clip(`shard ${sh.id} · slots ${sh.slots.join(', ') || 'none yet'}`, chars)))
    const my = 26
    const ry = my + NODE_H + 56
    const n = Math.max(sh.replicas.length, 1)
    const rw = (w - (n - 1) * pad) / n
    sh.replicas.forEach((r, j) => {
      const x = x0 + j * (rw + pad)
      svg.append(s('line', { x1: x0 + w / 2, y1: my + NODE_H, x2: x + rw / 2, y2: ry, class: `link ${r.attached ? 'attached' : 'detached'} ${r.healthy ? '' : 'unhealthy'}` }))
      svg.append(s('text', { x: x + rw / 2 + 6, y: my + NODE_H + 32, class: 'link-label' }, r.attached ? `lag ${bytes(r.lagBytes)}` : 'not attached'))
    })
    const m = sh.master === null ? 'unknown' : key(sh.master)
    const mKind = sh.master?.confirmed !== true || sh.failoverInProgress ? 'warn' : 'ok'
    svg.append(nodeBox(x0, my, w, 'master', m, sh.master?.confirmed === false ? 'role not confirmed' : sh.failoverInProgress ? 'failover in progress' : 'writes here', reads(m), mKind))
    sh.replicas.forEach((r, j) => {
      svg.append(nodeBox(x0 + j * (rw + pad), ry, rw, 'replica', key(r), r.healthy ? `healthy · lag ${num(r.lagSeconds, 0)} s` : (r.reason ?? 'unhealthy'), reads(key(r)), r.healthy ? 'ok' : 'bad'))
    })
  })
  return svg
}
