/** CORS for browsers: allowed origins from CORS_ORIGINS; the headers a browser needs are exposed. */
import cors from '@fastify/cors'
import fp from 'fastify-plugin'

export const EXPOSED_HEADERS = ['etag', 'retry-after', 'location', 'x-sync-token', 'x-served-by', 'x-ttl', 'x-request-id', 'upstash-sync-token',
  'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'www-authenticate']

export default fp<{ origins: string[] }>(async (app, { origins }) => {
  if (origins.length === 0) return
  await app.register(cors, {
    origin: origins.includes('*') ? '*' : origins,
    methods: ['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS'],
    allowedHeaders: ['authorization', 'content-type', 'if-match', 'if-none-match', 'x-sync-token', 'x-request-id',
      // what @upstash/redis sends from a browser
      'upstash-encoding', 'upstash-sync-token', 'upstash-telemetry-runtime', 'upstash-telemetry-platform', 'upstash-telemetry-sdk'],
    exposedHeaders: EXPOSED_HEADERS,
    maxAge: 600
  })
}, { name: 'gateway-cors' })
