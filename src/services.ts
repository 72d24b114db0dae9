/**
 * Builds the Redis-side services from the config: connections, sentinels, topology, breakers,
 * read router and the KV service. Nothing here knows about HTTP.
 */
import type { Logger } from 'pino'
import { Breakers } from './breakers.js'
import { nearCacheFor } from './cache/setup.js'
import type { Config } from './config.js'
import { KvService, type ReadCache } from './kv.js'
import { Connections, nodeKey } from './redis/connections.js'
import { nodeSettings } from './redis/node-settings.js'
import { ReadRouter } from './routing.js'
import { Sentinels } from './sentinel/sentinels.js'
import { Topology } from './topology.js'
import { createClusterServices } from './cluster/services.js'
import type { ClusterTopology } from './cluster/topology.js'

export interface Services {
  connections: Connections
  topology: Topology
  breakers: Breakers
  router: ReadRouter
  kv: KvService
  /** The near-cache (undefined when NEAR_CACHE=false). */
  near?: ReadCache
  /** Cluster mode (REDIS_CLUSTER_NODES): the shards; `topology` is then this cluster's summary. */
  cluster?: ClusterTopology
  close(): void
}

export function createServices (config: Config, log: Logger): Services {
  if (config.clusterNodes !== undefined) {
    const c = createClusterServices(config, log)
    // The cluster topology and KV service offer what the routes, metrics and the command gate use
    // of their Sentinel-mode counterparts (src/cluster/); the declared types name those classes.
    return { ...c, topology: c.topology as unknown as Topology, kv: c.kv as unknown as KvService, cluster: c.topology, close: closer(c) }
  }
  const connections = new Connections(config.poolSize, nodeSettings(config, log), log)
  const sentinels = new Sentinels(config.sentinels, config.masterName, {
    username: config.sentinelUsername,
    password: config.sentinelPassword,
    connectTimeoutMs: config.connectTimeoutMs,
    name: 'skv-gateway-sentinel',
    // REDIS_SENTINELS are addresses the gateway reaches as given: no translation.
    ...(config.sentinelTls !== undefined ? { tls: config.sentinelTls } : {})
  }, config.commandTimeoutMs, log)
  const breakers = new Breakers(config, log)
  const topology = new Topology(config, sentinels, connections, breakers, log)
  topology.on('change', () => {
    const s = topology.snapshot
    const nodes = new Set(s.replicas.map(r => r.key))
    if (s.master !== null) nodes.add(nodeKey(s.master))
    breakers.retain(nodes)
  })
  const router = new ReadRouter(config.readStrategy, node => breakers.isOpen(node))
  const near = nearCacheFor(config, connections, topology, log)
  const kv = new KvService(config, topology, connections, breakers, router, near)
  const parts = { connections, topology, breakers, router, kv, ...(near !== undefined ? { near } : {}) }
  return { ...parts, close: closer(parts) }
}

/** Stops what the services run: the near-cache's tracker, the topology (and its connections), the breakers. */
function closer (s: { near?: ReadCache; topology: { close (): void }; breakers: { close (): void } }): () => void {
  return () => {
    s.near?.tracker.close()
    s.topology.close()
    s.breakers.close()
  }
}
