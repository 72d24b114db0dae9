/**
 * What the pub/sub tests ask the servers: the gateway's subscriber connections (CLIENT LIST, by
 * their name) and a channel's subscribers (PUBSUB NUMSUB), on every live redis node.
 */
import type http from 'node:http'
import type net from 'node:net'
import type { Topology } from './topology.js'

/** `name=skv-gateway-pubsub` connections per live redis node, e.g. { 6380: 1 }. */
export async function subscriberConnections (topo: Topology): Promise<Record<number, number>> {
  const out: Record<number, number> = {}
  for (const r of topo.redis.filter(p => p.alive)) {
    const c = topo.client(r.port)
    try {
      const list = String(await c.call('CLIENT', 'LIST'))
      const n = list.split('\n').filter(l => /\bname=skv-gateway-pubsub\b/.test(l)).length
      if (n > 0) out[r.port] = n
    } finally {
      c.disconnect()
    }
  }
  return out
}

/** Subscribers of `channel` on the node at `port` (PUBSUB NUMSUB). */
export async function numsub (topo: Topology, port: number, channel: string): Promise<number> {
  const c = topo.client(port)
  try {
    return Number(((await c.call('PUBSUB', 'NUMSUB', channel)) as unknown[])[1])
  } finally {
    c.disconnect()
  }
}

/** Subscribers of `channel` on every live redis node together. */
export async function numsubAll (topo: Topology, channel: string): Promise<number> {
  let n = 0
  for (const r of topo.redis.filter(p => p.alive)) n += await numsub(topo, r.port, channel)
  return n
}

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** Resolves once `cond()` is true (polled every 20 ms), or fails after `ms`. */
export async function until (cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!await cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await sleep(20)
  }
}

/**
 * Before the gateway closes (teardowns run last-registered first): destroys the connections that
 * never sent a request. Some test client opens a spare connection it never uses, and Node's
 * server.close() waits for such a connection until headersTimeout (60 s), not only for requests.
 */
export function dropSilentConnections (t: { teardown(fn: () => unknown): void }, server: http.Server): void {
  const silent = new Set<net.Socket>()
  server.on('connection', (s: net.Socket) => { silent.add(s); s.once('close', () => silent.delete(s)) })
  server.on('request', (req: http.IncomingMessage) => { silent.delete(req.socket as net.Socket) })
  t.teardown(() => { for (const s of silent) s.destroy() })
}
