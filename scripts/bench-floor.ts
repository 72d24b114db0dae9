/**
 * The Node HTTP floor for `npm run bench`: a bare Fastify server (no logger, no plugins) with the
 * gateway's URL shape. GET /kv/:key answers a constant 100-byte value; PUT /kv/:key reads the whole
 * body and answers 201. Run as its own process by scripts/bench-targets.ts; prints `listening <port>`.
 */
import Fastify from 'fastify'

const VALUE = Buffer.alloc(100, 'v')
const app = Fastify({ logger: false })
app.removeAllContentTypeParsers()
app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 1_048_576 }, (_req, body, done) => { done(null, body) })

app.get('/kv/:key', async (_req, reply) => {
  return await reply.header('content-type', 'application/octet-stream').send(VALUE)
})
app.put('/kv/:key', async (req, reply) => {
  const bytes = Buffer.isBuffer(req.body) ? req.body.length : 0
  return await reply.code(201).send({ result: 'created', bytes })
})

const port = Number(process.env.PORT ?? '0')
await app.listen({ host: '127.0.0.1', port })
const address = app.server.address()
process.stdout.write(`listening ${typeof address === 'object' && address !== null ? address.port : port}\n`)
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => { void app.close().then(() => process.exit(0)) })
