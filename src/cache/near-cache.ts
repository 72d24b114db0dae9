/**
 * The near-cache: values read from replicas kept in process memory (an LRU bounded in bytes), kept
 * correct by Redis server-assisted client-side caching (see tracking.ts, which calls `invalidate`
 * and `flush` here).
 *
 * The race this module closes: an invalidation can arrive BEFORE the reply of the read it cancels
 * (the read executed on the replica, then the key changed, and the invalidation message overtook
 * the reply on its way to us). So every fill is registered before its read is sent (`begin`); an
 * invalidation of that key or a flush marks registered fills cancelled, and a cancelled fill is
 * never stored (`complete`).
 *
 * Pure logic: no I/O, no timers.
 */
import { LRUCache } from 'lru-cache'
import type { ReadValue } from '../etag.js'

/**
 * The bytes and their ETag, or null for both: the key did not exist (a tracked read of a missing key
 * is cached too); and the node they were read from.
 */
export type CachedValue = ReadValue & { node: string }

/** A read in flight whose answer may be stored. */
export interface Fill {
  readonly key: string
  cancelled: boolean
}

export type FlushReason = 'invalidation-connection' | 'data-connection' | 'heartbeat' | 'topology' | 'server-flush'

export interface NearCacheStats {
  enabled: boolean
  entries: number
  bytes: number
  maxBytes: number
  maxValueBytes: number
  hits: number
  misses: number
  evictions: number
  invalidations: number
  flushes: Record<FlushReason, number>
}

/** Bytes an entry is charged beyond its key and value (object, LRU slots, Buffer header). */
const ENTRY_OVERHEAD_BYTES = 160

export class NearCache {
  private readonly lru: LRUCache<string, CachedValue>
  private readonly pending = new Map<string, Set<Fill>>()
  private hits = 0
  private misses = 0
  private evictions = 0
  private invalidations = 0
  private readonly flushes: Record<FlushReason, number> = {
    'invalidation-connection': 0, 'data-connection': 0, heartbeat: 0, topology: 0, 'server-flush': 0
  }

  constructor (readonly maxBytes: number, readonly maxValueBytes: number) {
    this.lru = new LRUCache<string, CachedValue>({
      maxSize: maxBytes,
      sizeCalculation: (v, k) => ENTRY_OVERHEAD_BYTES + k.length * 2 + (v.value?.length ?? 0),
      dispose: (_v, _k, reason) => { if (reason === 'evict') this.evictions++ }
    })
  }

  /** The cached answer for `key`, counted as a hit or a miss. */
  get (key: string): CachedValue | undefined {
    const v = this.lru.get(key)
    if (v === undefined) this.misses++
    else this.hits++
    return v
  }

  /** True when `key` is cached right now (not counted, recency not updated). */
  has (key: string): boolean {
    return this.lru.has(key)
  }

  /** Registers a read of `key` about to be sent on a tracked connection. */
  begin (key: string): Fill {
    const fill: Fill = { key, cancelled: false }
    let set = this.pending.get(key)
    if (set === undefined) { set = new Set(); this.pending.set(key, set) }
    set.add(fill)
    return fill
  }

  /**
   * Ends a fill. Stores `answer` unless the fill was cancelled meanwhile, or `answer` is undefined
   * (the read failed or is not cacheable), or the value is too large.
   */
  complete (fill: Fill, answer?: CachedValue): void {
    const set = this.pending.get(fill.key)
    if (set !== undefined) {
      set.delete(fill)
      if (set.size === 0) this.pending.delete(fill.key)
    }
    if (fill.cancelled || answer === undefined) return
    if (answer.value !== null && answer.value.length > this.maxValueBytes) return
    // The parser's Buffer is a view into a whole socket read: keep a copy of just the value.
    // Field by field, not `{ ...answer, value }`: a spread followed by more properties is slow in V8 11
    // and leaves old-generation garbage (bench/README.md, session 7).
    this.lru.set(fill.key, answer.value === null ? answer : { value: Buffer.from(answer.value), etag: answer.etag, node: answer.node })
  }

  /** The key changed on the server (or is being written through us): drop it, cancel its fills. */
  invalidate (key: string): void {
    this.invalidations++
    this.lru.delete(key)
    const set = this.pending.get(key)
    if (set !== undefined) for (const f of set) f.cancelled = true
  }

  /** Drops everything and cancels every fill in flight. */
  flush (reason: FlushReason): void {
    this.flushes[reason]++
    this.lru.clear()
    for (const set of this.pending.values()) for (const f of set) f.cancelled = true
  }

  get stats (): NearCacheStats {
    return {
      enabled: true,
      entries: this.lru.size,
      bytes: this.lru.calculatedSize,
      maxBytes: this.maxBytes,
      maxValueBytes: this.maxValueBytes,
      hits: this.hits,
      misses: this.misses,
      evictions: this.evictions,
      invalidations: this.invalidations,
      flushes: { ...this.flushes }
    }
  }
}
