/**
 * Which Redis errors are faults of the node (count against its breaker, worth a retry elsewhere)
 * and which are the user's own outcome (WRONGTYPE, syntax...) that must never trip a breaker.
 */

/**
 * Reply prefixes that mean "this node cannot serve this now", typically during a failover. MOVED,
 * ASK and CLUSTERDOWN only come from Redis Cluster (REDIS_CLUSTER_NODES): the slot is served
 * elsewhere now, or the cluster is reconfiguring; the command was not run. TRYAGAIN (a multi-key
 * command on a migrating slot whose keys are split, or new) is Redis's answer to the client, as
 * Redis Cluster gives it: no node would serve it until the migration ends.
 */
const NODE_FAULT_REPLIES = /^(READONLY|LOADING|MASTERDOWN|BUSY|NOREPLICAS|NOSCRIPT_FAILOVER|UNBLOCKED|MOVED|ASK|CLUSTERDOWN)\b/

/**
 * Redis Cluster's "not here / not now" answers (MOVED, ASK, CLUSTERDOWN): retried like a node
 * fault, but they say nothing about the health of the node that gave them (no breaker counts them).
 */
export function isClusterRedirect (err: unknown): boolean {
  return err instanceof Error && err.name === 'ReplyError' && /^(MOVED|ASK|CLUSTERDOWN)\b/.test(err.message)
}

/** A gateway-side timeout of one Redis call. */
export class RedisTimeoutError extends Error {
  readonly code = 'ETIMEDOUT'
  constructor (what: string, ms: number) {
    super(`${what} timed out after ${ms} ms`)
    this.name = 'RedisTimeoutError'
  }
}

/** True when the error says the node is unreachable, slow, or not in a state to serve. */
export function isNodeFault (err: unknown): boolean {
  if (!(err instanceof Error)) return true
  if (err.name === 'ReplyError') {
    // Errors inside scripts come back as "ERR ... script: ... READONLY ..." too.
    return NODE_FAULT_REPLIES.test(err.message) || /\bREADONLY\b|\bLOADING\b|\bMASTERDOWN\b/.test(err.message)
  }
  // Connection errors, ioredis "Connection is closed", offline-queue refusals, our timeouts.
  return true
}

/** Runs `fn`, rejecting with RedisTimeoutError after `ms` (the call itself is not cancelled). */
export async function withTimeout<T> (what: string, ms: number, fn: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new RedisTimeoutError(what, ms)), ms)
    timer.unref()
  })
  try {
    return await Promise.race([fn(), timeout])
  } finally {
    clearTimeout(timer)
  }
}
