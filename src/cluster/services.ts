/**
 * The Redis-side services in Cluster mode (REDIS_CLUSTER_NODES): connections that send READONLY
 * (replicas serve reads of their own slots), the cluster topology, breakers, read router, the
 * near-cache and the per-slot KV service.
 */
import type { Logger } from 'pino'
import { Breakers } from '../breakers.js'
import { nearCacheFor } from '../cache/setup.js'
import type { Config } from '../config.js'
import type { ReadCache } from '../kv.js'
import { Connections } from '../redis/connections.js'
import { nodeSettings } from '../redis/node-settings.js'
import { ReadRouter } from '../routing.js'
import { ClusterKvService } from './kv.js'
import { ClusterTopology } from './topology.js'

/** What createClusterServices builds (src/services.ts adds close() and hands it to the app). */
export interface ClusterServices {
  connections: Connections
  topology: ClusterTopology
  breakers: Breakers
  router: ReadRouter
  kv: ClusterKvService
  near?: ReadCache
}

/** Builds the Cluster-mode services from the config (nothing connects before `topology.start()`). */
export function createClusterServices (config: Config, log: Logger): ClusterServices {
  const connections = new Connections(config.poolSize, { ...nodeSettings(config, log), readOnly: true }, log)
  const breakers = new Breakers(config, log)
  const topology = new ClusterTopology(config, connections, breakers, log)
  const router = new ReadRouter(config.readStrategy, node => breakers.isOpen(node))
  // The near-cache tracks every readable replica of every shard (CLIENT TRACKING per node); it is
  // flushed when a shard's master, the highest config epoch or the set of readable replicas changes.
  const near = nearCacheFor(config, connections, topology, log)
  // A slot starting to migrate: a value its old owner's replica answered may be stale already (its
  // key moved away, no invalidation will come): flushed; the slot's reads then go to the master.
  if (near !== undefined) topology.on('slot-migrating', () => near.cache.flush('topology'))
  const kv = new ClusterKvService(config, topology, connections, breakers, router, near)
  return { connections, topology, breakers, router, kv, ...(near !== undefined ? { near } : {}) }
}
