/**
 * Redis ACL users of the partition deployment: the same `skv-data`/`skv-control` users as the test
 * topology (test/helpers/topology.ts), from the one generator in src/security/acl.ts, so the gateway
 * runs here the way it runs everywhere else. The default user stays (replication, sentinels and the
 * checker's probes use it), as in the test topology.
 */
import { randomBytes } from 'node:crypto'
import { aclConfigLines, CONTROL_USER, DATA_USER } from '../../src/security/acl.js'

export interface AclSetup {
  /** `user` lines for every redis-server config file. */
  redisConf: string[]
  /** REDIS_USERNAME/PASSWORD and REDIS_CONTROL_USERNAME/PASSWORD for the gateway. */
  gatewayEnv: Record<string, string>
}

/** Fresh passwords for one deployment. */
export function aclSetup (): AclSetup {
  const dataPassword = randomBytes(16).toString('hex')
  const controlPassword = randomBytes(16).toString('hex')
  return {
    redisConf: aclConfigLines({ dataPassword, controlPassword }),
    gatewayEnv: {
      REDIS_USERNAME: DATA_USER,
      REDIS_PASSWORD: dataPassword,
      REDIS_CONTROL_USERNAME: CONTROL_USER,
      REDIS_CONTROL_PASSWORD: controlPassword
    }
  }
}
