/**
 * Credentials of the gateway's control connections (REDIS_CONTROL_USERNAME/PASSWORD): topology
 * checks, invalidation subscriptions, COMMAND, SCRIPT KILL, the rate limiter's counters.
 */
import type { Config } from '../config.js'
import type { ClientAuth } from './connections.js'

/** The control user's credentials, or undefined when none is configured (the data user's serve both). */
export function controlAuth (config: Pick<Config, 'controlUsername' | 'controlPassword'>): ClientAuth | undefined {
  const { controlUsername: username, controlPassword: password } = config
  if (username === undefined && password === undefined) return undefined
  return { ...(username === undefined ? {} : { username }), ...(password === undefined ? {} : { password }) }
}
