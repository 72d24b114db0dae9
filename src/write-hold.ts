/**
 * Holding a write until its master can take it (Sentinel mode: src/topology.ts; Cluster mode: one
 * shard, src/cluster/shard.ts).
 *
 * A write is held BEFORE anything is applied (a failover in progress, a replica the WAIT must count
 * not attached yet...), and a held write is sent only while enough of the request's budget is left
 * to confirm it: a write that waited until the last milliseconds of its budget and was then sent
 * would answer 504 (outcome unknown) at the first hiccup of its confirmation (the replica that just
 * rejoined still catching up), where 503 (nothing applied) is the honest answer. A write that finds
 * its master ready at once is sent whatever the budget left (nothing held it).
 */
import { GatewayError } from './errors.js'

export interface HoldOptions<T> {
  /** The request's deadline (its retry budget). */
  deadline: number
  /** Budget a held write must still have to be sent (see `sendReserveMs`). */
  reserveMs: number
  /** The master to write to now, or null while writes are held (may throw, e.g. breaker open). */
  ready: () => T | null
  /** Why writes are held (503 message); `late`: ready now, but too little budget is left. */
  refusal: (late: boolean) => string
  /** Asks for a refresh and waits for a topology change, at most `ms`. */
  poll: (ms: number) => Promise<void>
  /** Longest single wait between two checks. */
  pollMs: number
}

/** What a held write must have left of its budget to be sent: one WAIT, never more than half the budget. */
export function sendReserveMs (config: { waitTimeoutMs: number; retryBudgetMs: number }): number {
  return Math.min(config.waitTimeoutMs, Math.floor(config.retryBudgetMs / 2))
}

/** The master once ready; 503 GW_ERR_REDIS_UNAVAILABLE (nothing applied) when the hold outlasts the budget. */
export async function holdUntilWritable<T> (o: HoldOptions<T>): Promise<T> {
  const sendBy = o.deadline - o.reserveMs
  for (let first = true; ; first = false) {
    const master = o.ready()
    const now = Date.now()
    if (master !== null && (first || now < sendBy)) return master
    const left = sendBy - now
    if (left <= 0) throw new GatewayError('GW_ERR_REDIS_UNAVAILABLE', o.refusal(master !== null), { retryAfter: 1 })
    await o.poll(Math.min(left, o.pollMs))
  }
}
