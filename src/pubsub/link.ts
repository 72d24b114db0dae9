/**
 * One subscriber connection to one Redis node, kept in step with what the hub wants: the channels
 * (SUBSCRIBE) and, while any pattern subscription is open, the data user's own channel patterns
 * (PSUBSCRIBE of exactly the `&` patterns of its ACL: Redis checks a PSUBSCRIBE pattern literally
 * against them, so no other pattern could be subscribed; the hub matches patterns itself).
 *
 * Everything is subscribed again after each (re)connect (ioredis's autoResubscribe is off: the
 * hub must know when the subscriptions are back, to tell the streams about the gap).
 *
 * Sharded (SSUBSCRIBE, shard-hub.ts): one SSUBSCRIBE per hash slot (Redis Cluster refuses one
 * spanning slots). ioredis leaves an SSUBSCRIBE answered MOVED pending forever (it only emits
 * `moved`), and takes the `sunsubscribe` Redis pushes when a slot leaves the node (failover, slot
 * migration) for the answer to a command it never sent: either ends this round (`moved`), and the
 * second also reconnects, so that ioredis's state starts clean and everything is subscribed again.
 *
 * Events: `synced` (all wanted is subscribed), `failed` (Redis refused a subscription), `lost`
 * (a synced connection closed), `moved` (sharded: a channel's slot is served elsewhere now),
 * `message` (channel, message) and `pmessage` (channel, message), as Buffers.
 */
import { EventEmitter } from 'node:events'
import calculateSlot from 'cluster-key-slot'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { closeClient, nodeKey, type Connections, type NodeAddress } from '../redis/connections.js'

/** What the hub wants subscribed: channel names as latin1 strings (their exact bytes), and whether patterns are in use. */
export interface LinkWants { channels: ReadonlySet<string>; patterns: boolean }

const bytes = (key: string): Buffer => Buffer.from(key, 'latin1')

/** The channels by hash slot: one SSUBSCRIBE (SUNSUBSCRIBE) each. */
function bySlot (keys: readonly string[]): Buffer[][] {
  const groups = new Map<number, Buffer[]>()
  for (const k of keys) {
    const b = bytes(k)
    const slot = calculateSlot(b)
    const g = groups.get(slot)
    if (g === undefined) groups.set(slot, [b])
    else g.push(b)
  }
  return [...groups.values()]
}

/** ioredis's error for a reply no command was waiting for: here a `sunsubscribe` Redis pushed by itself. */
const UNEXPECTED_SUNSUBSCRIBE = /Command queue state error.*Last reply: sunsubscribe/s

/** A connection of its own to `addr` for a Link (named `skv-gateway-pubsub` in CLIENT LIST), its errors logged at most every 5 s. */
export function subscriberClient (connections: Pick<Connections, 'newClient'>, addr: NodeAddress, log: Logger): Redis {
  const client = connections.newClient(addr, 'skv-gateway-pubsub', { autoResubscribe: false })
  let lastLogged = 0
  client.on('error', (err: Error) => {
    if (Date.now() - lastLogged < 5000) return
    lastLogged = Date.now()
    log.warn({ node: nodeKey(addr), err: err.message }, 'pubsub: subscriber connection error')
  })
  return client
}

export class Link extends EventEmitter {
  /** Channels confirmed subscribed on the current connection. */
  private readonly channels = new Set<string>()
  private firehose = false
  private syncing = false
  private again = false
  private closed = false
  /** Everything wanted was subscribed since the last (re)connect. */
  private synced = false
  /** Sharded: rejects the round in flight when ioredis drops an SSUBSCRIBE's answer (see the module comment). */
  private interrupt: ((err: Error) => void) | null = null

  /**
   * `node`: "host:port"; `client`: a connection of its own to it (autoResubscribe off), closed by
   * close(); `firehosePatterns`: the PSUBSCRIBE patterns used while patterns are wanted; `sharded`:
   * SSUBSCRIBE instead of SUBSCRIBE (no patterns then).
   */
  constructor (readonly node: string, private readonly client: Redis, private readonly wants: () => LinkWants,
    private readonly firehosePatterns: readonly string[], private readonly sharded = false) {
    super()
    client.on('ready', () => { this.reset(); void this.sync() })
    if (sharded) {
      client.on('moved', () => this.stale(false))
      client.on('error', (err: Error) => { if (UNEXPECTED_SUNSUBSCRIBE.test(err.message)) this.stale(true) })
    }
    client.on('close', () => {
      const was = this.synced
      this.reset()
      if (was && !this.closed) this.emit('lost')
    })
    client.on(sharded ? 'smessageBuffer' : 'messageBuffer', (channel: Buffer, message: Buffer) => this.emit('message', channel, message))
    client.on('pmessageBuffer', (_pattern: Buffer, channel: Buffer, message: Buffer) => this.emit('pmessage', channel, message))
  }

  /** True when every wanted channel (and the patterns, if wanted) is subscribed on a live connection. */
  covers (channels: Iterable<string>, patterns: boolean): boolean {
    if (!this.synced || this.client.status !== 'ready') return false
    if (patterns && !this.firehose) return false
    for (const c of channels) if (!this.channels.has(c)) return false
    return true
  }

  get live (): boolean { return this.synced && this.client.status === 'ready' }

  /** Brings the connection in step with `wants()` (single flight: calls during a sync run it again after). */
  async sync (): Promise<void> {
    if (this.syncing) { this.again = true; return }
    this.syncing = true
    try {
      do {
        this.again = false
        if (this.closed || this.client.status !== 'ready') return
        const want = this.wants()
        const add = [...want.channels].filter(c => !this.channels.has(c))
        const drop = [...this.channels].filter(c => !want.channels.has(c))
        for (const c of drop) this.channels.delete(c)
        const ops: Array<Promise<unknown>> = []
        if (this.sharded) {
          // A SUNSUBSCRIBE refused (MOVED: the slot left this node, which dropped the channel already) changes nothing.
          for (const g of bySlot(drop)) ops.push(this.client.sunsubscribe(...g).catch(() => {}))
          for (const g of bySlot(add)) ops.push(this.client.ssubscribe(...g))
        } else {
          if (drop.length > 0) ops.push(this.client.unsubscribe(...drop.map(bytes)))
          if (add.length > 0) ops.push(this.client.subscribe(...add.map(bytes)))
        }
        const patterns = want.patterns
        if (patterns !== this.firehose) {
          // Like dropped channels, patterns stop counting as covered when their PUNSUBSCRIBE is sent: a
          // client subscribing meanwhile must wait for the PSUBSCRIBE that follows (the next round),
          // or it is confirmed while Redis is dropping the patterns and misses what is published then.
          if (!patterns) this.firehose = false
          ops.push(patterns ? this.client.psubscribe(...this.firehosePatterns) : this.client.punsubscribe(...this.firehosePatterns))
        }
        const round = Promise.all(ops)
        await (this.sharded ? Promise.race([round, new Promise<never>((_resolve, reject) => { this.interrupt = reject })]) : round)
        this.interrupt = null
        for (const c of add) this.channels.add(c)
        if (patterns) this.firehose = true
      } while (this.again)
      if (!this.closed && this.client.status === 'ready') {
        this.synced = true
        this.emit('synced')
      }
    } catch (err) {
      // A Redis refusal (NOPERM: the data user's ACL) is reported; a dropped connection is not:
      // the next 'ready' subscribes everything again.
      if ((err as Error).name === 'ReplyError' && !this.closed) this.emit('failed', err)
    } finally {
      this.interrupt = null
      this.syncing = false
    }
  }

  /** Sharded: a slot was answered elsewhere (MOVED) or left this node (a pushed sunsubscribe; reconnect). */
  private stale (reconnect: boolean): void {
    if (this.closed) return
    this.interrupt?.(Object.assign(new Error('a channel\'s slot is served by another node'), { name: 'MovedError' }))
    this.interrupt = null
    this.emit('moved')
    if (reconnect) this.client.disconnect(true)
  }

  close (): void {
    this.closed = true
    this.reset()
    this.client.removeAllListeners('messageBuffer')
    this.client.removeAllListeners('pmessageBuffer')
    closeClient(this.client)
  }

  private reset (): void {
    this.synced = false
    this.channels.clear()
    this.firehose = false
  }
}
