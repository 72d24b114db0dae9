/**
 * Example AWS Lambda function (Node.js 20+, no dependencies): a session store with a page-view
 * counter, kept in Redis through sentinel-kv-gateway's HTTP API with plain `fetch`.
 *
 *   GET|POST /?session=<id>  counts one view: reads session:<id>, increments `views`, writes it
 *                            back with ?ttl= (sliding expiry) and answers the session as JSON.
 *   DELETE   /?session=<id>  forgets the session.
 *
 * Without ?session= a new id is made. Works behind an API Gateway HTTP API / function URL, or
 * invoked directly with `{ "session": "<id>", "method": "GET" }`.
 * Concurrent views of one session never lose an increment: the write is conditional on the ETag
 * that was read (If-Match; If-None-Match: * to create) and is retried on 412.
 *
 * Environment:
 *   GATEWAY_URL          base URL of the gateway, e.g. https://kv.internal.example.com (required)
 *   GATEWAY_TOKEN        bearer token with rights rw on the prefix (optional)
 *   SESSION_TTL_SECONDS  idle time before a session expires (default 1800)
 *   KEY_PREFIX           key prefix (default "session:")
 *   GATEWAY_TIMEOUT_MS   timeout of one call to the gateway (default 3000)
 */
import { randomUUID } from 'node:crypto'

const ID = /^[A-Za-z0-9_-]{1,128}$/
const MAX_ATTEMPTS = 20

/** An error with the HTTP status this function answers and a stable code. */
class SessionError extends Error {
  constructor (status, code, message, extra = {}) {
    super(message)
    Object.assign(this, { status, code, extra })
  }
}

function settings () {
  const url = process.env.GATEWAY_URL
  if (!url) throw new SessionError(500, 'CONFIG_INVALID', 'GATEWAY_URL is not set')
  return {
    url: url.replace(/\/+$/, ''),
    token: process.env.GATEWAY_TOKEN || undefined,
    ttl: Number(process.env.SESSION_TTL_SECONDS || 1800),
    prefix: process.env.KEY_PREFIX ?? 'session:',
    timeoutMs: Number(process.env.GATEWAY_TIMEOUT_MS || 3000)
  }
}

/** One call to the gateway: { status, etag, body } for 2xx, 404, 412; a SessionError for anything else. */
async function call (cfg, method, key, { query = '', headers = {}, body } = {}) {
  const target = `${cfg.url}/kv/${encodeURIComponent(key)}${query ? `?${query}` : ''}`
  const auth = cfg.token ? { authorization: `Bearer ${cfg.token}` } : {}
  let res
  try {
    res = await fetch(target, { method, body, headers: { ...auth, ...headers }, signal: AbortSignal.timeout(cfg.timeoutMs) })
  } catch (err) {
    throw new SessionError(502, 'GATEWAY_UNREACHABLE', `${method} ${cfg.url} failed: ${err.cause?.message ?? err.message}`)
  }
  const text = await res.text()
  if (res.ok || res.status === 404 || res.status === 412) return { status: res.status, etag: res.headers.get('etag'), body: text }
  let gateway
  try { gateway = JSON.parse(text).error } catch { gateway = { message: text.slice(0, 200) } }
  const status = [429, 503, 504].includes(res.status) ? 503 : 502
  throw new SessionError(status, 'GATEWAY_ERROR', `the gateway answered ${res.status} to ${method}`, { gatewayStatus: res.status, gatewayError: gateway })
}

function parseSession (text, key) {
  try {
    const s = JSON.parse(text)
    if (Number.isInteger(s?.views)) return s
  } catch {}
  throw new SessionError(502, 'SESSION_CORRUPT', `${key} does not hold a session written by this function`)
}

/** Reads, increments and conditionally writes back the session; retries when another view won the race. */
async function countView (cfg, id) {
  const key = cfg.prefix + id
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    // consistency=strong: read the master, so the ETag is the latest one.
    const got = await call(cfg, 'GET', key, { query: 'consistency=strong' })
    const now = new Date().toISOString()
    const session = got.status === 404 ? { id, views: 0, firstSeen: now } : parseSession(got.body, key)
    session.views += 1
    session.lastSeen = now
    const put = await call(cfg, 'PUT', key, {
      query: `ttl=${cfg.ttl}`,
      body: JSON.stringify(session),
      headers: { 'content-type': 'application/json', ...(got.status === 404 ? { 'if-none-match': '*' } : { 'if-match': got.etag }) }
    })
    if (put.status !== 412) return { ...session, ttlSeconds: cfg.ttl, attempts: attempt }
    await new Promise(resolve => setTimeout(resolve, Math.random() * 10 * attempt))
  }
  throw new SessionError(503, 'TOO_MUCH_CONTENTION', `session ${id} changed under us ${MAX_ATTEMPTS} times`)
}

const reply = (statusCode, body) => ({ statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

export async function handler (event = {}) {
  try {
    const cfg = settings()
    const method = (event.requestContext?.http?.method ?? event.httpMethod ?? event.method ?? 'GET').toUpperCase()
    const id = event.queryStringParameters?.session ?? event.session ?? randomUUID()
    if (!ID.test(id)) throw new SessionError(400, 'BAD_SESSION_ID', 'session must be 1 to 128 of A-Z a-z 0-9 _ -')
    if (method === 'DELETE') {
      const del = await call(cfg, 'DELETE', cfg.prefix + id)
      return reply(200, { id, deleted: del.status === 204 })
    }
    return reply(200, await countView(cfg, id))
  } catch (err) {
    if (!(err instanceof SessionError)) throw err
    return reply(err.status, { error: { code: err.code, message: err.message, ...err.extra } })
  }
}
