/**
 * The settings of every connection to a Redis node, from the configuration: the data and control
 * credentials, TLS, REDIS_NAT_MAP, timeouts. One place for both modes (Sentinel and Cluster).
 */
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { ClientSettings } from './connections.js'
import { controlAuth } from './control-auth.js'

/** Settings of the node connections; warns once when no control user is configured. */
export function nodeSettings (config: Config, log: Logger): ClientSettings {
  const control = controlAuth(config)
  if (config.controlUsername === undefined) {
    log.warn('REDIS_CONTROL_USERNAME is not set: the connections that run client commands log in as the same Redis user as the control connections, so Redis ACL is not a second wall behind the gateway\'s own checks (see the README, "Redis ACL: the second wall")')
  }
  return {
    username: config.redisUsername,
    password: config.redisPassword,
    ...(control === undefined ? {} : { control }),
    commandReplyBytes: config.upstashMaxReplyBytes,
    db: config.db,
    connectTimeoutMs: config.connectTimeoutMs,
    name: 'skv-gateway',
    ...(config.redisTls !== undefined ? { tls: config.redisTls } : {}),
    // Node addresses come from the sentinels or the cluster: translate them (REDIS_NAT_MAP) when connecting.
    natMap: config.natMap
  }
}
