/**
 * Failed authentications (401) counted per client address, in this process: past
 * AUTH_FAILURES_MAX in a window, the address gets 429 on every request that needs a token until
 * the window ends, whatever token it sends. A right guess must look like a wrong one while the
 * address is blocked, or guessing would go on at full speed.
 *
 * A fixed window per address that starts with its first failure. No timer: expired entries are
 * swept while recording, at most once per window, and the table is bounded (oldest dropped).
 */
import { normalizeIP } from '@fastify/rate-limit'

/** IPv6 clients are counted per /56, as @fastify/rate-limit does: one host usually holds a whole /64 or more. */
export const IPV6_SUBNET = 56

/** Most addresses tracked at once (about 100 bytes each). Default: 100 000. */
export const MAX_TRACKED = 100_000

/** The address a client is counted under: IPv4 as it is, IPv6 as its /56 (IPv4-mapped IPv6 as IPv4). */
export function clientAddress (ip: string): string {
  return ip.includes(':') ? normalizeIP(ip, IPV6_SUBNET) : ip
}

interface Entry { count: number; resetAt: number }

export class AuthFailures {
  private readonly entries = new Map<string, Entry>()
  private nextSweep = 0

  /** `max` 0 disables (nothing is counted, nothing is refused). */
  constructor (readonly max: number, readonly windowMs: number, private readonly maxTracked = MAX_TRACKED) {}

  /** Seconds until `ip` may try again (0: it may now). One Map lookup. */
  retryAfter (ip: string, now = Date.now()): number {
    const e = this.entries.get(clientAddress(ip))
    if (e === undefined || e.count < this.max || now >= e.resetAt) return 0
    return Math.max(1, Math.ceil((e.resetAt - now) / 1000))
  }

  /** Counts one 401 answered to `ip`. */
  record (ip: string, now = Date.now()): void {
    if (this.max === 0) return
    const addr = clientAddress(ip)
    const e = this.entries.get(addr)
    if (e !== undefined && now < e.resetAt) {
      e.count++
      return
    }
    if (e !== undefined) this.entries.delete(addr) // re-inserted below: the oldest stay first
    if (now >= this.nextSweep) this.sweep(now)
    if (this.entries.size >= this.maxTracked) {
      const oldest = this.entries.keys().next().value
      if (oldest !== undefined) this.entries.delete(oldest)
    }
    this.entries.set(addr, { count: 1, resetAt: now + this.windowMs })
  }

  /** Addresses currently tracked (0: nobody failed lately, nothing to look up). */
  get size (): number { return this.entries.size }

  private sweep (now: number): void {
    for (const [addr, e] of this.entries) if (now >= e.resetAt) this.entries.delete(addr)
    this.nextSweep = now + this.windowMs
  }
}
