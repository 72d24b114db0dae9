/**
 * Shutdown: connections that never sent a request (a browser's speculative preconnection, an HTTP
 * client's spare socket after an aborted stream) are closed. Node's server.close() and Fastify's
 * idle-connection closing leave them open, so without this app.close() (and a graceful SIGTERM)
 * waited until the client gave up on them: over a minute, past SHUTDOWN_TIMEOUT_MS.
 */
import type { Server } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'

/** Tracks the server's sockets until their first request; `preClose` destroys the ones still silent. */
export function closeSilentSocketsOnShutdown (app: FastifyInstance): void {
  const silent = new Set<Socket>()
  const server = app.server as Server
  // Per connection, and one Set.delete per request (the 'request' event): no per-request hook.
  server.on('connection', (s: Socket) => {
    silent.add(s)
    s.once('close', () => silent.delete(s))
  })
  server.on('request', req => { silent.delete(req.socket) })
  app.addHook('preClose', async () => {
    for (const s of silent) s.destroy()
    silent.clear()
  })
}
