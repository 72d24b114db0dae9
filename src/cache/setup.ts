/**
 * The near-cache and its invalidation tracker for a topology (both modes), or undefined when
 * NEAR_CACHE=false. The tracker follows the topology's snapshot on every change.
 */
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { Connections } from '../redis/connections.js'
import type { TopologySnapshot } from '../topology-types.js'
import { NearCache } from './near-cache.js'
import { InvalidationTracker } from './tracking.js'

/** What the tracker follows: a topology that emits 'change' and has a snapshot. */
export interface Followed { readonly snapshot: TopologySnapshot; on (event: 'change', listener: () => void): unknown }

/** The near-cache following `topology`, or undefined when NEAR_CACHE=false. */
export function nearCacheFor (config: Config, connections: Connections, topology: Followed, log: Logger): { cache: NearCache; tracker: InvalidationTracker } | undefined {
  if (config.nearCache === undefined) return undefined
  const cache = new NearCache(config.nearCache.maxBytes, config.nearCache.maxValueBytes)
  const tracker = new InvalidationTracker(cache, connections, log)
  topology.on('change', () => tracker.follow(topology.snapshot))
  return { cache, tracker }
}
