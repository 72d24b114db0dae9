/** CORS for browsers: allowed origins from CORS_ORIGINS; the headers a browser needs are exposed. */
import cors from '@fastify/cors'
import fp from 'fastify-plugin'
import { GatewayError } from '../errors.js'

export const EXPOSED_HEADERS = ['etag', 'retry-after', 'location', 'x-sync-token', 'x-served-by', 'x-cache', 'x-ttl', 'x-request-id', 'upstash-sync-token',
  'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'www-authenticate']

export default fp<{ origins: string[] }>(async (app, { origins }) => {
  if (origins.length === 0) return
  // An OPTIONS that is not a preflight (no Origin, or no Access-Control-Request-Method): our JSON
  // error, not @fastify/cors's 400 text/plain.
  app.addHook('onRequest', (req, _reply, done) => {
    if (req.method !== 'OPTIONS' || (req.headers.origin !== undefined && req.headers['access-control-request-method'] !== undefined)) { done(); return }
    done(new GatewayError('GW_ERR_BAD_REQUEST', 'OPTIONS is answered only as a CORS preflight: send Origin and Access-Control-Request-Method'))
  })
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
