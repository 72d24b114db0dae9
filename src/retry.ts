/**
 * Retries within a total time budget, with exponential backoff and full jitter
 * (delay = random(0, min(max, base * 2^attempt))).
 */

export interface BackoffOptions { baseMs: number; maxMs: number }

/** Full-jitter delay before retry number `attempt` (0-based). */
export function backoffDelay (attempt: number, o: BackoffOptions): number {
  const ceiling = Math.min(o.maxMs, o.baseMs * 2 ** Math.min(attempt, 20))
  return Math.floor(Math.random() * ceiling)
}

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/**
 * Waits the backoff delay for `attempt` unless that would pass `deadline`.
 * Returns false (without waiting) when there is no time left for another try.
 */
export async function backoffWithin (attempt: number, deadline: number, o: BackoffOptions): Promise<boolean> {
  const delay = backoffDelay(attempt, o)
  if (Date.now() + delay >= deadline) return false
  await sleep(delay)
  return true
}
