/**
 * Histograms updated in place on the hot path and handed to prom-client only when /metrics is
 * scraped. prom-client's own Histogram hashes the label object on every observe (sorting and joining
 * its values) and looks the bucket up by value; here a caller keeps the `Series` of its label set
 * and an observation is a short loop over the bounds and three additions. The exposition is the one
 * prom-client writes for a Histogram of the same name, help, labels and buckets (`le` first, then the
 * labels, cumulative buckets, `+Inf`, `_sum`, `_count`); a counter can be derived from the counts.
 */
import type { Registry } from 'prom-client'

/** The counts of one label set. */
export class Series {
  /** Observations per bucket (not cumulative): one per bound, then +Inf. */
  readonly counts: Float64Array
  sum = 0
  count = 0

  constructor (readonly labels: Readonly<Record<string, string>>, private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe (value: number): void {
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > bounds[i]!) i++
    this.counts[i]!++
    this.sum += value
    this.count++
  }
}

interface Sample { metricName: string; labels: Record<string, string | number>; value: number }
interface Exposed { name: string; help: string; type: string; values: Sample[]; aggregator: 'sum' }

/** What prom-client's Registry needs of a metric: a name, a type and its samples when scraped. */
abstract class Exported {
  readonly aggregator = 'sum' as const
  constructor (registry: Registry, readonly name: string, readonly help: string, readonly type: 'histogram' | 'counter') {
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0])
  }

  protected abstract samples (): Sample[]
  async get (): Promise<Exposed> {
    return { name: this.name, help: this.help, type: this.type, values: this.samples(), aggregator: this.aggregator }
  }
}

/** A histogram whose series are created once per label set and kept by the caller. */
export class FastHistogram extends Exported {
  private readonly all: Series[] = []

  constructor (registry: Registry, name: string, help: string, readonly labelNames: readonly string[], readonly buckets: readonly number[]) {
    super(registry, name, help, 'histogram')
  }

  /** A new series for `labels` (the caller keeps it: one series per label set). */
  series (labels: Record<string, string>): Series {
    const s = new Series(labels, this.buckets)
    this.all.push(s)
    return s
  }

  /** Every series observed at least once, in creation order. */
  get observed (): Series[] {
    return this.all.filter(s => s.count > 0)
  }

  protected samples (): Sample[] {
    const out: Sample[] = []
    for (const s of this.observed) {
      let acc = 0
      for (let i = 0; i < this.buckets.length; i++) {
        acc += s.counts[i]!
        out.push({ metricName: `${this.name}_bucket`, labels: { le: this.buckets[i]!, ...s.labels }, value: acc })
      }
      out.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf', ...s.labels }, value: s.count })
      out.push({ metricName: `${this.name}_sum`, labels: { ...s.labels }, value: s.sum })
      out.push({ metricName: `${this.name}_count`, labels: { ...s.labels }, value: s.count })
    }
    return out
  }
}

/** A counter that is the `_count` of a histogram's series (counted once, exposed twice). */
export class CountOf extends Exported {
  /** `of`: read when scraped (the histogram may be created after this counter, to come second in the exposition). */
  constructor (registry: Registry, name: string, help: string, private readonly of: () => FastHistogram) {
    super(registry, name, help, 'counter')
  }

  protected samples (): Sample[] {
    return this.of().observed.map(s => ({ metricName: this.name, labels: { ...s.labels }, value: s.count }))
  }
}
