/**
 * Pure arithmetic over Prometheus histogram buckets: the difference of two cumulative readings
 * (what was observed in between) and a quantile from it, interpolated inside the bucket the way
 * PromQL's histogram_quantile() does. No I/O: unit-tested with plain numbers.
 */

/** Cumulative counts per bucket, in the order of `bounds` (the last bound is +Infinity). */
export interface BucketCounts { bounds: number[]; counts: number[] }

/**
 * Observations between two cumulative readings of the same series (`prev` undefined: the series is
 * new, everything in `cur` counts). A counter that went backwards (the registry was reset) counts
 * from zero again.
 */
export function bucketDelta (cur: BucketCounts, prev?: BucketCounts): BucketCounts {
  if (prev === undefined || prev.counts.length !== cur.counts.length) return cur
  const counts = cur.counts.map((c, i) => c - prev.counts[i]!)
  return counts.some(c => c < 0) ? cur : { bounds: cur.bounds, counts }
}

/**
 * The `q` quantile (0..1) of the observations counted in `h`, or null when there are none.
 * Linear inside the bucket it falls in (from the previous bound, 0 for the first); in the +Inf
 * bucket, the largest finite bound (nothing better is known).
 */
export function quantile (h: BucketCounts, q: number): number | null {
  const total = h.counts[h.counts.length - 1] ?? 0
  if (total <= 0) return null
  const rank = q * total
  for (let i = 0; i < h.counts.length; i++) {
    const c = h.counts[i]!
    if (c < rank) continue
    const upper = h.bounds[i]!
    const lower = i === 0 ? 0 : h.bounds[i - 1]!
    if (!Number.isFinite(upper)) return lower
    const below = i === 0 ? 0 : h.counts[i - 1]!
    const inBucket = c - below
    return inBucket <= 0 ? upper : lower + (upper - lower) * ((rank - below) / inBucket)
  }
  return h.bounds[h.bounds.length - 2] ?? null
}
