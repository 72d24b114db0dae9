/**
 * Which replica serves a read: the healthy ones whose breaker is not open, chosen by the
 * configured strategy. `null` means "no usable replica: the master answers".
 */
import type { ReadStrategy } from './config.js'
import type { ReplicaState } from './topology.js'

/** Weight of the newest sample in the latency moving average. */
const EWMA_ALPHA = 0.2

export class ReadRouter {
  private cursor = 0
  private readonly latency = new Map<string, number>()

  constructor (private readonly strategy: ReadStrategy, private readonly isOpen: (node: string) => boolean) {}

  /** Feeds the least-latency strategy: one observed call duration for `node`. */
  observe (node: string, ms: number): void {
    const prev = this.latency.get(node)
    this.latency.set(node, prev === undefined ? ms : prev + EWMA_ALPHA * (ms - prev))
  }

  /** Moving average latency of `node` in ms, if any call was observed. */
  latencyOf (node: string): number | null {
    return this.latency.get(node) ?? null
  }

  /** Usable replicas, in a stable order. */
  candidates (replicas: readonly ReplicaState[]): ReplicaState[] {
    return replicas.filter(r => r.healthy && !this.isOpen(r.key))
  }

  pick (replicas: readonly ReplicaState[]): ReplicaState | null {
    const c = this.candidates(replicas)
    if (c.length === 0) return null
    switch (this.strategy) {
      case 'random':
        return c[Math.floor(Math.random() * c.length)]!
      case 'least-latency': {
        // Unmeasured replicas go first so every replica gets measured.
        let best = c[0]!
        for (const r of c) if ((this.latency.get(r.key) ?? -1) < (this.latency.get(best.key) ?? -1)) best = r
        return best
      }
      case 'round-robin':
        return c[(this.cursor++) % c.length]!
    }
  }
}
