/**
 * The near-cache's own logic (no I/O): fills cancelled by an invalidation or a flush that arrives
 * before their read's reply, the byte bound, the value-size bound, counters.
 */
import t from 'tap'
import { NearCache, type CachedValue } from '../src/cache/near-cache.js'
import { readValue } from '../src/etag.js'

const answer = (s: string | null): CachedValue => ({ ...readValue(s === null ? null : Buffer.from(s)), node: 'n:1' })

t.test('a completed fill is served; counters count hits and misses', async t => {
  const c = new NearCache(1 << 20, 1024)
  t.equal(c.get('k'), undefined)
  c.complete(c.begin('k'), answer('v1'))
  t.equal(c.get('k')?.value?.toString(), 'v1')
  t.equal(c.stats.hits, 1)
  t.equal(c.stats.misses, 1)
})

t.test('an invalidation that overtakes the reply cancels the fill (pending marker)', async t => {
  const c = new NearCache(1 << 20, 1024)
  const fill = c.begin('k')
  c.invalidate('k') // arrives while the read is in flight
  c.complete(fill, answer('old'))
  t.equal(c.get('k'), undefined, 'the possibly stale answer is not stored')
  // A read started after the invalidation fills normally.
  c.complete(c.begin('k'), answer('new'))
  t.equal(c.get('k')?.value?.toString(), 'new')
})

t.test('an invalidation of another key does not cancel the fill', async t => {
  const c = new NearCache(1 << 20, 1024)
  const fill = c.begin('k')
  c.invalidate('other')
  c.complete(fill, answer('v'))
  t.equal(c.get('k')?.value?.toString(), 'v')
})

t.test('two reads of one key in flight: an invalidation cancels both', async t => {
  const c = new NearCache(1 << 20, 1024)
  const a = c.begin('k')
  const b = c.begin('k')
  c.invalidate('k')
  c.complete(a, answer('old'))
  c.complete(b, answer('old'))
  t.equal(c.get('k'), undefined)
})

t.test('a flush drops every entry and cancels every fill in flight, and is counted by reason', async t => {
  const c = new NearCache(1 << 20, 1024)
  c.complete(c.begin('a'), answer('1'))
  const pending = c.begin('b')
  c.flush('heartbeat')
  c.complete(pending, answer('2'))
  t.equal(c.get('a'), undefined)
  t.equal(c.get('b'), undefined)
  t.equal(c.stats.entries, 0)
  t.equal(c.stats.flushes.heartbeat, 1)
})

t.test('a failed or uncacheable read (no answer) stores nothing', async t => {
  const c = new NearCache(1 << 20, 1024)
  c.complete(c.begin('k'))
  t.equal(c.get('k'), undefined)
})

t.test('a missing key (null) is cached like a value', async t => {
  const c = new NearCache(1 << 20, 1024)
  c.complete(c.begin('gone'), answer(null))
  const hit = c.get('gone')
  t.ok(hit !== undefined && hit.value === null)
})

t.test('values above the size limit are not cached; the byte bound evicts least recently used', async t => {
  const c = new NearCache(4096, 100)
  c.complete(c.begin('big'), answer('x'.repeat(101)))
  t.equal(c.get('big'), undefined, 'value larger than maxValueBytes')
  for (let i = 0; i < 50; i++) c.complete(c.begin(`k${i}`), answer('y'.repeat(100)))
  t.ok(c.stats.bytes <= 4096, `bytes ${c.stats.bytes} within the bound`)
  t.ok(c.stats.evictions > 0, `evictions counted (${c.stats.evictions})`)
  t.ok(c.get('k49') !== undefined, 'the newest entry stays')
  t.equal(c.get('k0'), undefined, 'the oldest was evicted')
})

t.test('the stored value is a copy, not a view into the reply buffer', async t => {
  const c = new NearCache(1 << 20, 1024)
  const chunk = Buffer.from('....value....')
  const view = chunk.subarray(4, 9)
  c.complete(c.begin('k'), { ...readValue(view), node: 'n:1' })
  chunk.fill(0)
  t.equal(c.get('k')?.value?.toString(), 'value')
})
