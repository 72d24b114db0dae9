/**
 * Feeds the timeline from what the services already emit: the sentinels' events, the topology's
 * changes (master, writes held, replica health), breaker state changes, and near-cache flushes
 * (read from the cache's counters once a second: the cache emits nothing, and nothing is added
 * to its hot path). Listeners only: no request path is touched.
 */
import type { Breakers, BreakerState } from '../breakers.js'
import type { NearCache } from '../cache/near-cache.js'
import type { Durability } from '../config.js'
import { nodeKey } from '../redis/connections.js'
import type { SentinelEvent } from '../sentinel/sentinels.js'
import type { Topology, TopologySnapshot } from '../topology.js'
import type { EventLevel, Timeline } from './timeline.js'

/** Sentinel events that mean something failed or is being failed over. */
const BAD_EVENTS = new Set(['+odown', '-failover-abort-not-elected', '-failover-abort-no-good-slave', '-failover-abort-slave-timeout', '+failover-end-for-timeout'])
const WARN_EVENTS = new Set(['+sdown', '+try-failover', '+switch-master', '+elected-leader', '+promoted-slave', '-slave-restart-as-master'])

const BREAKER_LEVEL: Record<BreakerState, EventLevel> = { open: 'bad', 'half-open': 'warn', closed: 'info' }

export interface WatchSources {
  topology: Topology
  breakers: Breakers
  cache?: NearCache | undefined
  /** WRITE_DURABILITY: the WAIT count writes need by default. */
  durability: Durability
}

/** Starts feeding `timeline`; returns `poll` (call once a second: near-cache flushes) and `stop`. */
export function watchServices (timeline: Timeline, { topology, breakers, cache, durability }: WatchSources): { poll: () => void; stop: () => void } {
  const onSentinel = (e: SentinelEvent): void => {
    const level = BAD_EVENTS.has(e.channel) ? 'bad' : WARN_EVENTS.has(e.channel) ? 'warn' : 'info'
    timeline.add('sentinel', e.channel, e.message, level, e.sentinel)
  }
  let prev: TopologySnapshot = topology.snapshot
  let prevShort = 0
  const onChange = (next: TopologySnapshot): void => {
    const short = next.master === null || !next.masterConfirmed ? 0 : topology.waitCount(durability) - next.attachedReplicas
    diffSnapshots(timeline, prev, next, prevShort, short, durability)
    prev = next
    prevShort = short
  }
  const onMaster = (s: TopologySnapshot): void => {
    const to = s.master === null ? 'none' : nodeKey(s.master)
    const from = s.lastFailover?.from
    // Cluster mode: one shard's snapshot (named after the shard), not the deployment's.
    const of = s.masterName === topology.snapshot.masterName ? '' : ` of shard ${s.masterName}`
    if (s.lastFailover === null || from === null || from === undefined) timeline.add('gateway', 'master-discovered', `master${of} is ${to} (config epoch ${s.configEpoch})`)
    else timeline.add('gateway', 'master-changed', `master${of} changed: ${nodeKey(from)} -> ${to} (config epoch ${s.configEpoch})`, 'warn')
  }
  const onStale = (): void => {
    timeline.add('gateway', 'stale-promotion', 'the new master\'s replication history lacks the last acknowledged write: acknowledged writes may be lost', 'bad')
  }
  const onBreaker = (node: string, state: BreakerState): void => {
    timeline.add('gateway', `breaker-${state}`, `circuit breaker for ${node}: ${state}`, BREAKER_LEVEL[state])
  }
  topology.sentinels.on('event', onSentinel)
  topology.on('change', onChange)
  topology.on('master-change', onMaster)
  topology.on('stale-promotion', onStale)
  breakers.on('state', onBreaker)

  let flushes: Record<string, number> = { ...cache?.stats.flushes }
  return {
    poll () {
      if (cache === undefined) return
      const now = cache.stats.flushes
      for (const [reason, n] of Object.entries(now)) {
        const more = n - (flushes[reason] ?? 0)
        if (more > 0) timeline.add('gateway', 'near-cache-flushed', `near-cache flushed (${reason})${more > 1 ? ` x${more}` : ''}`, 'warn')
      }
      flushes = { ...now }
    },
    stop () {
      topology.sentinels.off('event', onSentinel)
      topology.off('change', onChange)
      topology.off('master-change', onMaster)
      topology.off('stale-promotion', onStale)
      breakers.off('state', onBreaker)
    }
  }
}

/** The gateway's own events between two topology snapshots. */
function diffSnapshots (timeline: Timeline, prev: TopologySnapshot, next: TopologySnapshot, prevShort: number, short: number, durability: Durability): void {
  const master = next.master === null ? 'none' : nodeKey(next.master)
  if (prev.masterConfirmed && !next.masterConfirmed) timeline.add('gateway', 'master-unconfirmed', `${master} does not confirm it is master (its role or no answer)`, 'warn')
  if (!prev.masterConfirmed && next.masterConfirmed && prev.refreshedAt !== null) timeline.add('gateway', 'master-confirmed', `${master} confirms it is master`)
  if (!prev.failoverInProgress && next.failoverInProgress) timeline.add('gateway', 'writes-held', 'writes held: a failover is in progress', 'warn')
  if (prev.failoverInProgress && !next.failoverInProgress) timeline.add('gateway', 'writes-released', 'failover over: writes no longer held')
  if (prevShort <= 0 && short > 0) timeline.add('gateway', 'writes-held', `writes wait for ${short} more replica(s) to attach (WRITE_DURABILITY=${durability})`, 'warn')
  if (prevShort > 0 && short <= 0) timeline.add('gateway', 'writes-released', 'enough replicas attached: writes no longer wait')
  const before = new Map(prev.replicas.map(r => [r.key, r]))
  for (const r of next.replicas) {
    const was = before.get(r.key)
    if (was === undefined) {
      if (prev.refreshedAt !== null) timeline.add('gateway', 'replica-listed', `replica ${r.key} listed${r.healthy ? '' : ` (unhealthy: ${r.reason ?? 'unknown'})`}`)
      continue
    }
    if (was.healthy && !r.healthy) timeline.add('gateway', 'replica-unhealthy', `replica ${r.key} gets no reads: ${r.reason ?? 'unhealthy'}`, 'warn')
    if (!was.healthy && r.healthy) timeline.add('gateway', 'replica-healthy', `replica ${r.key} serves reads again`)
  }
  const now = new Set(next.replicas.map(r => r.key))
  for (const k of before.keys()) if (!now.has(k)) timeline.add('gateway', 'replica-unlisted', `replica ${k} no longer listed`)
}
