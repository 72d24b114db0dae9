/** Waiting for a hub's subscriptions to be in place (hub.ts, shard-hub.ts). */
import type { EventEmitter } from 'node:events'
import { GatewayError } from '../errors.js'

/**
 * Resolves when `ok()` holds, checked now and at each `synced` event of `events`; rejects on a
 * `failed` event (a Redis refusal) or after `timeoutMs`.
 */
async function untilCovered (events: EventEmitter, ok: () => boolean, timeoutMs: number): Promise<void> {
  if (ok()) return
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer)
      events.off('synced', check)
      events.off('failed', done)
      if (err === undefined) resolve()
      else reject(err)
    }
    const check = (): void => { if (ok()) done() }
    const timer = setTimeout(() => done(new Error(`not subscribed within ${timeoutMs} ms`)), timeoutMs)
    events.on('synced', check)
    events.on('failed', done)
  })
}

/**
 * Runs `start` (which places the new subscriptions) and waits until `ok()` (untilCovered). On any
 * failure runs `undo`, so nothing stays subscribed, and throws 503 GW_ERR_REDIS_UNAVAILABLE.
 */
export async function subscribed (events: EventEmitter, start: () => void, ok: () => boolean, timeoutMs: number, undo: () => void): Promise<void> {
  try {
    start()
    await untilCovered(events, ok, timeoutMs)
  } catch (err) {
    undo()
    throw err instanceof GatewayError ? err : new GatewayError('GW_ERR_REDIS_UNAVAILABLE', `no Redis node took the subscription: ${(err as Error).message}`, { retryAfter: 1, cause: err })
  }
}
