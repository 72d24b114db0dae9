/**
 * Subscriptions over Server-Sent Events, wire-compatible with @upstash/redis's `subscribe` and
 * `psubscribe`, and usable from a browser's EventSource (GET, token as `?_token=`). HTTP mapping
 * only: the hub (src/pubsub/hub.ts) holds the one Redis subscriber connection, each stream
 * (src/pubsub/stream.ts) one client. Sharded channels (`/ssubscribe`, SSUBSCRIBE) are the same
 * streams, served by the sharded hub (src/pubsub/shard-hub.ts) on the master of their slot.
 *
 * Registered inside the Upstash plugin (routes/upstash.ts): the same authentication (header or
 * `?_token=`), error shape and body parser. GET|POST /subscribe/*, /psubscribe/* and /ssubscribe/*
 * are more specific than the path form `/*`, so the router sends them here.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { streamRouteDoc } from '../src/pubsub/docs.js'
import { PubSubHub } from '../src/pubsub/hub.js'
import { StreamLimits } from '../src/pubsub/limits.js'
import { clusterNodes, clusterShardTarget, sentinelNodes, sentinelShardTarget, type Candidates } from '../src/pubsub/placement.js'
import { checkSubscription, type SubscriptionKind } from '../src/pubsub/rights.js'
import { commonSlot, ShardedPubSubHub } from '../src/pubsub/shard-hub.js'
import { SseStream } from '../src/pubsub/stream.js'
import { CROSSSLOT } from '../src/cluster/commands.js'
import { UpstashHttpError } from '../src/upstash/protocol.js'

/** Longest wait for the streams' last bytes at shutdown before the sockets are closed anyway. */
const SHUTDOWN_FLUSH_MS = 1000
/** Most channels (patterns) in one stream: every published message is matched against every pattern. */
export const MAX_NAMES_PER_STREAM = 64

const routes: FastifyPluginAsync = async (app) => {
  const config = app.gatewayConfig
  const candidates: Candidates = replicas => app.router.candidates(replicas)
  const { cluster, topology } = app
  // Cluster mode (REDIS_CLUSTER_NODES): PUBLISH crosses the cluster bus, one connection to any node suffices.
  const hub = new PubSubHub({
    connections: app.connections,
    topology,
    nodes: cluster === undefined ? () => sentinelNodes(topology.snapshot, candidates) : () => clusterNodes(cluster.shards, candidates),
    log: app.log.child({ component: 'pubsub' }) as unknown as Logger,
    timeoutMs: config.connectTimeoutMs
  })
  // SPUBLISH reaches the nodes of the channel's shard only (Cluster), the master and its replicas (Sentinel).
  const shardHub = new ShardedPubSubHub({
    connections: app.connections,
    topology,
    target: cluster === undefined ? sentinelShardTarget(topology) : clusterShardTarget(cluster),
    refresh: () => topology.requestRefresh(),
    log: app.log.child({ component: 'pubsub-sharded' }) as unknown as Logger,
    timeoutMs: config.connectTimeoutMs
  })
  const limits = new StreamLimits(config.pubsub.maxStreamsPerToken, config.pubsub.maxStreams)
  const open = new Set<{ stream: SseStream; reply: FastifyReply }>()

  // Shutdown: every stream ends cleanly (unsubscribe events, end of the response) before the
  // server waits for its connections (idle once their stream ended: closed by server.close()).
  app.addHook('preClose', async () => {
    const finished = [...open].map(async ({ stream, reply }) => {
      const res = reply.raw
      const done = new Promise<void>(resolve => {
        if (res.writableFinished || res.destroyed) resolve()
        res.once('finish', () => resolve())
        res.once('close', () => resolve())
      })
      stream.end()
      let timer: NodeJS.Timeout | undefined
      await Promise.race([done, new Promise<void>(resolve => { timer = setTimeout(resolve, SHUTDOWN_FLUSH_MS) })])
      clearTimeout(timer)
      if (!res.destroyed && !res.writableFinished) res.destroy()
    })
    await Promise.all(finished)
  })
  app.addHook('onClose', async () => { hub.close(); shardHub.close() })

  async function serve (kind: SubscriptionKind, req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const names = namesOf(req.url, kind, config.maxKeyBytes)
    checkSubscription(req.principal, kind, names)
    // Redis Cluster serves one SSUBSCRIBE from the shard of its slot: its channels must share it.
    if (kind === 'ssubscribe' && cluster !== undefined && commonSlot(names) === null) throw new UpstashHttpError(400, CROSSSLOT)
    // A stream never ends: only to a client that asked for one (EventSource and the SDK do), so a
    // plain JSON client (curl without the header, a generic HTTP library) is told, not left hanging.
    if (!acceptsEventStream(req.headers.accept)) {
      throw new UpstashHttpError(406, `ERR ${kind} answers a stream of Server-Sent Events: send Accept: text/event-stream`)
    }
    const release = limits.acquire(req.principal.name)
    if (release === 'token') {
      throw new UpstashHttpError(429, `ERR this token already holds ${limits.maxPerToken} open subscription streams (PUBSUB_MAX_STREAMS_PER_TOKEN)`, 1)
    }
    if (release === 'process') {
      throw new UpstashHttpError(503, `GW_ERR_OVERLOADED this gateway process already holds ${limits.maxTotal} subscription streams (PUBSUB_MAX_STREAMS); retry shortly`, 1)
    }
    let unsubscribe: (() => void) | undefined
    const entry = { reply, stream: undefined as unknown as SseStream }
    const stream = new SseStream(kind, reply.raw, config.pubsub, why => {
      release()
      unsubscribe?.()
      open.delete(entry)
      if (why === 'slow-client') req.log.warn({ maxBufferedBytes: config.pubsub.maxBufferedBytes }, 'pubsub: a subscriber fell too far behind: disconnected')
    })
    entry.stream = stream
    // Queued before anything is sent, so the confirmations come before any message.
    stream.confirm(names)
    try {
      unsubscribe = kind === 'ssubscribe' ? await shardHub.add(stream, kind, names) : await hub.add(stream, kind, names)
    } catch (err) {
      stream.body.destroy()
      throw err
    }
    open.add(entry)
    reply.header('content-type', 'text/event-stream; charset=utf-8')
      .header('cache-control', 'no-cache, no-transform')
      .header('x-accel-buffering', 'no')
    return await reply.send(stream.body)
  }

  for (const kind of ['subscribe', 'psubscribe', 'ssubscribe'] as const) {
    for (const method of ['GET', 'POST'] as const) {
      app.route({
        method,
        url: `/${kind}/*`,
        exposeHeadRoute: false,
        config: { public: true, swaggerTransform: streamRouteDoc(kind, method) },
        handler: async (req, reply) => await serve(kind, req, reply)
      })
    }
    // Without a name: Redis's own answer, not the path form's "not available".
    app.route({
      method: ['GET', 'POST'],
      url: `/${kind}`,
      exposeHeadRoute: false,
      schema: { hide: true },
      config: { public: true },
      handler: async () => { throw new UpstashHttpError(400, `ERR wrong number of arguments for '${kind}' command`) }
    })
  }
}

/** Whether an Accept header names `text/event-stream` (a wildcard alone does not). */
export function acceptsEventStream (accept: string | undefined): boolean {
  return accept !== undefined && /(^|,)\s*text\/event-stream\s*(;|,|$)/i.test(accept)
}

/** The channels (patterns) of `/<kind>/a/b...`: URL-decoded path segments, each 1 to `maxBytes` bytes. */
export function namesOf (rawUrl: string, kind: SubscriptionKind, maxBytes: number): string[] {
  const q = rawUrl.indexOf('?')
  const path = (q < 0 ? rawUrl : rawUrl.slice(0, q)).slice(kind.length + 2)
  if (path === '') throw new UpstashHttpError(400, `ERR wrong number of arguments for '${kind}' command`)
  const segments = path.split('/')
  if (segments.length > 1 && segments[segments.length - 1] === '') segments.pop() // a trailing slash
  if (segments.length > MAX_NAMES_PER_STREAM) throw new UpstashHttpError(400, `ERR at most ${MAX_NAMES_PER_STREAM} ${kind === 'psubscribe' ? 'patterns' : 'channels'} in one stream`)
  const names = segments.map((s, i) => {
    let name: string
    try {
      name = decodeURIComponent(s)
    } catch {
      throw new UpstashHttpError(400, `ERR path segment ${i + 2} is not valid percent-encoded UTF-8`)
    }
    const bytes = Buffer.byteLength(name)
    if (bytes === 0 || bytes > maxBytes) throw new UpstashHttpError(400, `ERR each ${kind === 'psubscribe' ? 'pattern' : 'channel'} must be 1 to ${maxBytes} bytes (KV_MAX_KEY_BYTES)`)
    return name
  })
  return names
}

export default routes
