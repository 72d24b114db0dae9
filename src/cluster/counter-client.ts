/**
 * Cluster mode: the client of the rate limiter's counters (src/plugins/rate-limit.ts). Each counter
 * is one key; ioredis's Cluster client routes it to its slot's master and follows MOVED, ASK and
 * failovers by itself (the counters need no replica confirmation: a lost count only lets a few
 * more requests through, and the limiter fails open anyway).
 */
import { Cluster } from 'ioredis'
import type { Config } from '../config.js'
import { controlAuth } from '../redis/control-auth.js'
import { ioredisNatMap } from '../redis/nat.js'
import { tlsOptionsForAnyHost } from '../redis/tls.js'

/** A Cluster client for REDIS_CLUSTER_NODES, logged in as the control user (the reserved keys are its). */
export function counterClusterClient (config: Config, seeds: NonNullable<Config['clusterNodes']>): Cluster {
  const natMap = ioredisNatMap(config.natMap)
  return new Cluster(seeds, {
    ...(natMap !== undefined ? { natMap } : {}),
    enableOfflineQueue: false,
    redisOptions: {
      ...(config.redisTls !== undefined ? { tls: tlsOptionsForAnyHost(config.redisTls) } : {}),
      ...(controlAuth(config) ?? { username: config.redisUsername, password: config.redisPassword }),
      connectTimeout: config.connectTimeoutMs,
      commandTimeout: config.commandTimeoutMs,
      maxRetriesPerRequest: 1,
      connectionName: 'skv-gateway-ratelimit'
    }
  })
}
