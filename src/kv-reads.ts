/**
 * One /kv read on one node (src/kv.ts decides which nodes, in which order): GET and TTL (and ROLE
 * for a sync token) in one socket write, through the node's breaker, filling the near-cache when
 * the connection it is read on is tracked; an ASK answer on the master followed once (Cluster mode).
 */
import type { Breakers } from './breakers.js'
import type { CachedValue, Fill, NearCache } from './cache/near-cache.js'
import type { InvalidationTracker } from './cache/tracking.js'
import { askingEach, type Redirects } from './cluster/ask.js'
import type { Config } from './config.js'
import { GatewayError } from './errors.js'
import { readValue, type ReadValue } from './etag.js'
import { corked, nodeKey, type Connections, type NodeAddress } from './redis/connections.js'
import type { ReadRouter } from './routing.js'

export type Role = 'master' | 'replica'
export interface ReadOptions { consistency: 'eventual' | 'strong'; syncToken?: number }
export type ReadResult = ReadValue & {
  ttlSeconds: number | null
  servedBy: Role
  node: string
  /** Near-cache outcome: absent when the cache is off; `bypass` for strong and sync-token reads. */
  cache?: 'hit' | 'miss' | 'bypass'
}

/**
 * A ReadResult built field by field, always in the same order (one object shape). Do not build it
 * with a spread of another object: on the cache-hit path that spread made ~80 % of the bytes a
 * request allocated, and old-generation garbage for a major GC every ~0.4 s (bench/README.md, session 7).
 */
export function readResult (v: ReadValue, ttlSeconds: number | null, servedBy: Role, node: string, cache: ReadResult['cache']): ReadResult {
  return { value: v.value, etag: v.etag, ttlSeconds, servedBy, node, cache } as ReadResult
}

/** The near-cache and what keeps it correct (both absent when NEAR_CACHE=false). */
export interface ReadCache { cache: NearCache; tracker: InvalidationTracker }

export class NodeReads {
  constructor (private readonly config: Config, private readonly connections: Connections,
    private readonly breakers: Breakers, private readonly router: ReadRouter,
    private readonly near?: ReadCache, private readonly redirects?: Redirects) {}

  /**
   * A read on the master; an ASK answer (its slot migrating, the key moved) is followed once to the
   * importing master, whose answer never fills the near-cache (no invalidation tracks it there).
   */
  async master (master: NodeAddress, key: string): Promise<ReadResult | null> {
    try {
      return await this.from(master, 'master', key)
    } catch (err) {
      const ask = this.redirects?.askTarget(err) ?? null
      if (ask === null) throw err
      return await this.from(ask.node, 'master', key, undefined, false, true)
    }
  }

  /**
   * One read on one node; null when a sync token is given and the replica is not there yet.
   * `fill`: store the answer in the near-cache, if the connection it is read on is tracked.
   * `asking`: ASKING before each command (an ASK redirect).
   */
  async from (addr: NodeAddress, role: Role, key: string, syncToken?: number, fill = false, asking = false): Promise<ReadResult | null> {
    const node = nodeKey(addr)
    const started = performance.now()
    let answer: CachedValue | undefined
    const out = await this.breakers.run(node, 'read', this.config.commandTimeoutMs, async () => {
      const c = await this.connections.get(addr).acquire(this.config.connectTimeoutMs)
      // Registered before the read is sent: an invalidation overtaking the reply cancels it.
      const pending: Fill | undefined = fill && this.near?.tracker.canFill(node, c) === true ? this.near.cache.begin(key) : undefined
      try {
        // Two or three commands in one socket write, without the cost of an ioredis Pipeline.
        const res: unknown[] = await corked(c, () => Promise.all(asking
          ? askingEach<unknown>(c, [async () => await c.getBuffer(key), async () => await c.ttl(key)])
          : [...(syncToken !== undefined ? [c.role()] : []), c.getBuffer(key), c.ttl(key)]))
        if (pending !== undefined) {
          const value = res[0] as Buffer | null
          // Keys with a TTL are not cached (their expiry would have to be tracked here too).
          if (value === null || res[1] === -1) { const v = readValue(value); answer = { value: v.value, etag: v.etag, node } as CachedValue }
        }
        return res
      } finally {
        if (pending !== undefined) this.near!.cache.complete(pending, answer)
      }
    })
    this.router.observe(node, performance.now() - started)
    if (syncToken !== undefined) {
      const offset = Number((out.shift() as unknown[])[role === 'master' ? 1 : 4])
      if (role === 'replica' && !(offset >= syncToken)) return null
    }
    const [value, ttl] = out as [Buffer | null, number]
    // The ETag computed for the cache entry serves the answer too.
    return readResult(answer ?? readValue(value), value !== null && ttl >= 0 ? ttl : null, role, node, undefined)
  }
}

/** A Redis error that is the request's own (not a node fault), as the /kv routes answer it. */
export function userError (err: unknown): GatewayError {
  const msg = err instanceof Error ? err.message : String(err)
  if (msg.startsWith('WRONGTYPE')) return new GatewayError('GW_ERR_WRONG_TYPE', 'the key holds a value that is not a string', { cause: err })
  return new GatewayError('GW_ERR_INTERNAL', 'Redis refused the command', { cause: err })
}
