/**
 * src/plugins/security.ts computes helmet's headers once at start: every kind of answer must carry
 * exactly the headers @fastify/helmet (which runs helmet on each request) gives it with the same
 * options. No Redis needed.
 */
import fastifyHelmet, { type FastifyHelmetOptions } from '@fastify/helmet'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import securityPlugin, { HELMET_OPTIONS, helmetHeaders } from '../src/plugins/security.js'

async function server (register: (app: FastifyInstance) => Promise<unknown>): Promise<FastifyInstance> {
  const app = Fastify()
  await register(app)
  app.get('/json', async () => ({ ok: true }))
  app.get('/bytes', async (_req, reply) => await reply.type('application/octet-stream').send(Buffer.from('v')))
  app.get('/fails', async () => { throw Object.assign(new Error('conflict'), { statusCode: 409 }) })
  app.get('/crashes', async () => { throw new Error('boom') })
  // A route with its own CSP (as /docs has): it wins over helmet's.
  app.get('/own-csp', async (_req, reply) => await reply.header('content-security-policy', "default-src 'self'").send('page'))
  await app.ready()
  return app
}

t.test('the same headers as @fastify/helmet on every kind of answer', async t => {
  const ours = await server(async app => await app.register(securityPlugin))
  const theirs = await server(async app => await app.register(fastifyHelmet, HELMET_OPTIONS as FastifyHelmetOptions))
  t.teardown(async () => { await ours.close(); await theirs.close() })
  const requests = [['GET', '/json'], ['HEAD', '/json'], ['GET', '/bytes'], ['GET', '/fails'], ['GET', '/crashes'], ['GET', '/missing'], ['POST', '/json'], ['GET', '/own-csp']] as const
  for (const [method, url] of requests) {
    const [a, b] = [await ours.inject({ method, url }), await theirs.inject({ method, url })]
    const { date: _a, ...got } = a.headers
    const { date: _b, ...want } = b.headers
    t.equal(a.statusCode, b.statusCode, `${method} ${url}: status`)
    t.strictSame(got, want, `${method} ${url}: headers`)
  }
})

t.test('helmet is run once, with our policy', async t => {
  const { headers, removed } = helmetHeaders(HELMET_OPTIONS)
  t.match(headers['content-security-policy'], /(^|;)default-src 'none'(;|$)/)
  t.match(headers['content-security-policy'], /(^|;)frame-ancestors 'none'(;|$)/)
  t.equal(headers['cross-origin-resource-policy'], 'cross-origin')
  t.equal(headers['x-content-type-options'], 'nosniff')
  t.same(removed, ['X-Powered-By'])
})
