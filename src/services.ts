/**
 * Builds the Redis-side services from the config: connections, sentinels, topology, breakers,
 * read router and the KV service. Nothing here knows about HTTP.
 */
import type { Logger } from 'pino'
import { Breakers } from './breakers.js'
import { NearCache } from './cache/near-cache.js'
import { InvalidationTracker } from './cache/tracking.js'
import type { Config } from './config.js'
import { KvService, type ReadCache } from './kv.js'
import { controlAuth } from './redis/control-auth.js'
import { Connections, nodeKey } from './redis/connections.js'
import { ReadRouter } from './routing.js'
import { Sentinels } from './sentinel/sentinels.js'
import { Topology } from './topology.js'

export interface Services {
  connections: Connections
  topology: Topology
  breakers: Breakers
  router: ReadRouter
  kv: KvService
  /** The near-cache (undefined when NEAR_CACHE=false). */
  near?: ReadCache
  close(): void
}

export function createServices (config: Config, log: Logger): Services {
  const control = controlAuth(config)
  if (config.controlUsername === undefined) {
    log.warn('REDIS_CONTROL_USERNAME is not set: the connections that run client commands log in as the same Redis user as the control connections, so Redis ACL is not a second wall behind the gateway\'s own checks (see the README, "Redis ACL: the second wall")')
  }
  const connections = new Connections(config.poolSize, {
    username: config.redisUsername,
    password: config.redisPassword,
    ...(control === undefined ? {} : { control }),
    commandReplyBytes: config.upstashMaxReplyBytes,
    db: config.db,
    connectTimeoutMs: config.connectTimeoutMs,
    name: 'skv-gateway',
    ...(config.redisTls !== undefined ? { tls: config.redisTls } : {}),
    // Node addresses come from the sentinels: translate them (REDIS_NAT_MAP) when connecting.
    natMap: config.natMap
  }, log)
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
  let near: ReadCache | undefined
  if (config.nearCache !== undefined) {
    const cache = new NearCache(config.nearCache.maxBytes, config.nearCache.maxValueBytes)
    const tracker = new InvalidationTracker(cache, connections, log)
    topology.on('change', () => tracker.follow(topology.snapshot))
    near = { cache, tracker }
  }
  const kv = new KvService(config, topology, connections, breakers, router, near)
  return {
    connections,
    topology,
    breakers,
    router,
    kv,
    ...(near !== undefined ? { near } : {}),
    close () {
      near?.tracker.close()
      topology.close()
      breakers.close()
    }
  }
}
