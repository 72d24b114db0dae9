/**
 * The operations page's pure parts: quantiles from histogram bucket deltas, the timeline ring, and
 * the traffic sampler reading a real prom-client registry (metrics named as src/metrics.ts names them).
 */
import { EventEmitter } from 'node:events'
import { Counter, Histogram, Registry } from 'prom-client'
import t from 'tap'
import { bucketDelta, quantile } from '../src/ui/histogram.js'
import { Timeline, TIMELINE_SIZE } from '../src/ui/timeline.js'
import { TrafficSampler, TRAFFIC_WINDOW_S } from '../src/ui/traffic.js'
import { watchServices } from '../src/ui/watch.js'

t.test('quantiles interpolate inside the bucket, like histogram_quantile()', async t => {
  const bounds = [0.1, 0.2, 0.4, Infinity]
  t.equal(quantile({ bounds, counts: [0, 0, 0, 0] }, 0.5), null, 'no observation: null')
  // 10 in (0, 0.1], 10 in (0.1, 0.2]: the median is the top of the first bucket.
  t.equal(quantile({ bounds, counts: [10, 20, 20, 20] }, 0.5), 0.1)
  t.ok(Math.abs(quantile({ bounds, counts: [10, 20, 20, 20] }, 0.75)! - 0.15) < 1e-9, 'half-way into the second bucket')
  t.equal(quantile({ bounds, counts: [0, 0, 0, 4] }, 0.99), 0.4, 'in +Inf: the largest finite bound')
  const d = bucketDelta({ bounds, counts: [12, 25, 30, 31] }, { bounds, counts: [10, 20, 20, 20] })
  t.same(d.counts, [2, 5, 10, 11], 'the delta of two cumulative readings')
  t.same(bucketDelta({ bounds, counts: [1, 1, 1, 1] }, { bounds, counts: [10, 20, 20, 20] }).counts, [1, 1, 1, 1], 'a reset counts from zero')
})

t.test('the timeline keeps the last 200 events and answers what came after a sequence number', async t => {
  const tl = new Timeline()
  const seen: number[] = []
  tl.on('event', (e: { seq: number }) => seen.push(e.seq))
  t.same(tl.since(0), [], 'empty at first')
  for (let i = 1; i <= TIMELINE_SIZE + 50; i++) tl.add('gateway', 'x', `event ${i}`)
  t.equal(seen.length, TIMELINE_SIZE + 50, 'every event is emitted')
  const kept = tl.since(0)
  t.equal(kept.length, TIMELINE_SIZE, `${TIMELINE_SIZE} kept`)
  t.equal(kept[0]!.detail, 'event 51', 'the oldest ones were dropped')
  t.equal(kept[kept.length - 1]!.seq, tl.lastSeq)
  t.same(tl.since(tl.lastSeq - 2).map(e => e.detail), [`event ${TIMELINE_SIZE + 49}`, `event ${TIMELINE_SIZE + 50}`])
  const s = tl.add('sentinel', '+switch-master', 'mymaster a b', 'warn', '127.0.0.1:26379')
  t.equal(s.sentinel, '127.0.0.1:26379')
  t.match(s.at, /^\d{4}-\d\d-\d\dT/)
})

t.test('traffic: rates, quantiles, errors, write waits, reads, cache and rejections per sample', async t => {
  const registry = new Registry()
  const http = new Histogram({ name: 'skv_http_request_duration_seconds', help: 'h', labelNames: ['route', 'method', 'status', 'served_by'], buckets: [0.001, 0.01, 0.1, 1], registers: [registry] })
  const redis = new Histogram({ name: 'skv_redis_command_duration_seconds', help: 'h', labelNames: ['node', 'op', 'outcome'], buckets: [0.001, 0.01, 0.1], registers: [registry] })
  const rejected = new Counter({ name: 'skv_rate_limit_rejections_total', help: 'c', registers: [registry] })
  let hits = 0
  let misses = 0
  new Counter({ name: 'skv_near_cache_hits_total', help: 'c', registers: [registry], collect () { this.reset(); this.inc(hits) } })
  new Counter({ name: 'skv_near_cache_misses_total', help: 'c', registers: [registry], collect () { this.reset(); this.inc(misses) } })
  const sampler = new TrafficSampler(registry)
  const get = { route: '/kv/:key', method: 'GET', served_by: 'replica' }
  http.observe({ ...get, status: '200' }, 0.0005)
  t.equal(await sampler.sample(1000), null, 'the first reading has nothing to compare with')

  for (let i = 0; i < 9; i++) http.observe({ ...get, status: '200' }, 0.0005)
  http.observe({ ...get, status: '404' }, 0.05)
  http.observe({ route: '/ui/events', method: 'GET', status: '200', served_by: 'none' }, 300)
  http.observe({ route: '/kv/:key', method: 'PUT', status: '503', served_by: 'none' }, 0.5)
  redis.observe({ node: '127.0.0.1:1', op: 'write', outcome: 'ok' }, 0.005)
  redis.observe({ node: '127.0.0.1:2', op: 'read', outcome: 'ok' }, 0.0005)
  redis.observe({ node: '127.0.0.1:2', op: 'read', outcome: 'error' }, 0.0005)
  rejected.inc(3)
  hits = 6
  misses = 2
  const p = (await sampler.sample(3000))!
  t.equal(p.dt, 2, 'the period since the last sample, in seconds')
  const gets = p.routes.find(r => r.route === 'GET /kv/:key')!
  t.equal(gets.role, 'replica')
  t.equal(gets.count, 10, 'only what happened since the last sample')
  t.ok(gets.p50! > 0 && gets.p50! <= 1, `p50 in the first bucket (${gets.p50} ms)`)
  t.ok(gets.p99! > 10 && gets.p99! <= 100, `p99 in the 10-100 ms bucket (${gets.p99} ms)`)
  t.notOk(p.routes.some(r => r.route.includes('/ui')), 'the page\'s own stream is left out')
  t.same(p.errors, { 404: 1, 503: 1 }, 'error answers by status')
  t.equal(p.writes.count, 1)
  t.ok(p.writes.p50! > 1 && p.writes.p50! <= 10, `write wait p50 ${p.writes.p50} ms`)
  t.same(p.reads, { '127.0.0.1:2': 2 }, 'reads per node')
  t.same(p.cache, { hits: 6, misses: 2 })
  t.equal(p.rateLimited, 3)

  const quiet = (await sampler.sample(4000))!
  t.same(quiet.routes, [], 'a quiet second has no route')
  t.same(quiet.cache, { hits: 0, misses: 0 })
  t.equal(quiet.writes.p99, null, 'no write: no latency (not 0)')
  t.same([...sampler.readsOver(60, 4000)], [['127.0.0.1:2', 2]], 'reads over the last minute')
  t.same([...sampler.readsOver(0.5, 4000)], [], 'older samples fall out of the window')
  for (let i = 0; i < TRAFFIC_WINDOW_S + 5; i++) await sampler.sample(5000 + i * 1000)
  t.equal(sampler.points().length, TRAFFIC_WINDOW_S, `${TRAFFIC_WINDOW_S} samples kept`)
})

t.test('the timeline is fed from sentinel events, topology changes, breakers and near-cache flushes', async t => {
  const sentinels = new EventEmitter()
  const base = {
    masterName: 'mymaster', master: { host: '127.0.0.1', port: 1 }, masterConfirmed: true, configEpoch: 1, masterReplOffset: 0,
    requiredReplicas: 2, allReplicas: 2, attachedReplicas: 2, failoverInProgress: false, lastFailover: null, refreshedAt: '2026-01-01T00:00:00.000Z',
    replicas: [2, 3].map(port => ({ host: '127.0.0.1', port, key: `127.0.0.1:${port}`, healthy: true, attached: true, lagBytes: 0, lagSeconds: 0, offset: 0, sentinelFlags: [] }))
  }
  const topology = Object.assign(new EventEmitter(), { sentinels, snapshot: { ...base, refreshedAt: null }, waitCount: () => 2 })
  const breakers = new EventEmitter()
  const cache = { stats: { flushes: { topology: 0, heartbeat: 0 } } }
  const tl = new Timeline()
  const w = watchServices(tl, { topology, breakers, cache, durability: 'replicated' } as unknown as Parameters<typeof watchServices>[1])
  const kinds = (): string[] => tl.since(0).map(e => `${e.kind}:${e.level}`)

  topology.emit('change', base)
  t.same(kinds(), [], 'the first view of a healthy deployment is no event')
  topology.emit('change', { ...base, failoverInProgress: true })
  sentinels.emit('event', { sentinel: '127.0.0.1:26379', channel: '+switch-master', message: 'mymaster 127.0.0.1 1 127.0.0.1 2' })
  topology.emit('master-change', { ...base, master: { host: '127.0.0.1', port: 2 }, lastFailover: { from: { host: '127.0.0.1', port: 1 } } })
  const frozen = { ...base, attachedReplicas: 1, replicas: [{ ...base.replicas[0]!, healthy: false, reason: 'does not answer INFO' }, base.replicas[1]!] }
  topology.emit('change', frozen)
  breakers.emit('state', '127.0.0.1:2', 'open')
  cache.stats.flushes = { topology: 2, heartbeat: 0 }
  w.poll()
  t.same(kinds(), [
    'writes-held:warn', '+switch-master:warn', 'master-changed:warn', 'writes-released:info',
    'writes-held:warn', 'replica-unhealthy:warn', 'breaker-open:bad', 'near-cache-flushed:warn'
  ], 'each change is one event, with its level')
  t.match(tl.since(0).find(e => e.kind === 'master-changed')?.detail, /127\.0\.0\.1:1 -> 127\.0\.0\.1:2/, 'master-changed names both masters')
  t.match(tl.since(0).find(e => e.kind === 'near-cache-flushed')?.detail, /topology.*x2/)
  t.equal(tl.since(0).find(e => e.kind === '+switch-master')?.sentinel, '127.0.0.1:26379', 'a sentinel event says which sentinel published it')
  w.stop()
  breakers.emit('state', '127.0.0.1:2', 'closed')
  t.equal(tl.lastSeq, 8, 'nothing is recorded after stop()')
})
