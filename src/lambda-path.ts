/**
 * The request URL of an AWS Lambda HTTP event, percent-encoded as the client sent it, so a key holding
 * `/ ? # %` or non-ASCII reaches `/kv/:key` intact. What each AWS front door hands the function
 * (live captures published in hotsock/voker, vokerhttp/testdata/ingress-paths.json, July 2026):
 *
 * - REST API (payload 1.0 without `version`), ALB and Lambda Function URLs (payload 2.0 on a
 *   `*.lambda-url.<region>.on.aws` domain) keep the path percent-encoded: used as it is, exact.
 * - HTTP API (payload 2.0 `rawPath`, and payload 1.0 `path` with `version: '1.0'`) decodes the path
 *   twice, and cuts it at a `?` produced by the first decoding: `%2F` arrives as `/`, `%23` as `#`,
 *   `%3F` cuts the rest of the path off, `%25` followed by no hex digits is refused (400) before the
 *   function runs, `%252F` arrives as `/`. The decoded path is encoded again here; under `/kv/`
 *   everything after the prefix is one key (no other route lies below `/kv/:key`). So a key is exact
 *   when the client encodes it as usual unless it holds `?` or `%`; those keys are exact only when the
 *   client encodes them twice (`encodeURIComponent(encodeURIComponent(key))`) for an HTTP API.
 *
 * Query strings: payload 2.0's `rawQueryString` is still encoded (exact); `queryStringParameters`
 * joins repeated names with commas, so it is not used. Payload 1.0 has only the decoded
 * `multiValueQueryStringParameters`, which the adapter encodes again (exact).
 */

/** Where an event came from, as far as its path encoding goes. */
export type EventSource = 'rest' | 'alb' | 'function-url' | 'http-api'

/** The fields of an API Gateway / ALB / Function URL event that decide the URL. */
export interface HttpEventShape {
  version?: string
  path?: string
  rawPath?: string
  rawQueryString?: string
  requestContext?: { elb?: unknown; domainName?: string }
}

const FUNCTION_URL_DOMAIN = /\.lambda-url\.[a-z0-9-]+\.on\.aws$/i
/** The single-key route's prefix (routes/kv.ts `/kv/:key`). */
const KV_PREFIX = '/kv/'
/** RFC 3986 unreserved characters: never percent-encoded. */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/

/** Which front door produced `event` (see the module comment). */
export function eventSource (event: HttpEventShape): EventSource {
  if (event.requestContext?.elb !== undefined) return 'alb'
  if (event.version === '2.0') return FUNCTION_URL_DOMAIN.test(event.requestContext?.domainName ?? '') ? 'function-url' : 'http-api'
  // HTTP API payload 1.0 says `version: '1.0'`; REST API events carry no version.
  return event.version === '1.0' ? 'http-api' : 'rest'
}

/** Percent-encodes every byte of the UTF-8 form of `s` but the unreserved characters (a lone surrogate becomes U+FFFD). */
export function encodePathPart (s: string): string {
  let out = ''
  for (const ch of s) {
    if (UNRESERVED.test(ch)) { out += ch; continue }
    for (const byte of Buffer.from(ch, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

/** A decoded path encoded again: everything after `/kv/` as one key, elsewhere segment by segment. */
export function encodeDecodedPath (path: string): string {
  if (path.startsWith(KV_PREFIX) && path.length > KV_PREFIX.length) return KV_PREFIX + encodePathPart(path.slice(KV_PREFIX.length))
  return path.split('/').map(encodePathPart).join('/')
}

/**
 * The event with its path (and, for payload 2.0, its query) replaced by the exact encoded URL, in the
 * fields @fastify/aws-lambda reads (`path` before `rawPath`; the query from `queryStringParameters`).
 */
export function withExactUrl<E extends HttpEventShape> (event: E): E {
  const source = eventSource(event)
  if (event.version === '2.0') {
    const raw = event.rawPath ?? '/'
    const path = source === 'http-api' ? encodeDecodedPath(raw) : raw
    const query = event.rawQueryString ?? ''
    return { ...event, rawPath: query === '' ? path : `${path}?${query}`, queryStringParameters: undefined }
  }
  if (source === 'http-api' && event.path !== undefined) return { ...event, path: encodeDecodedPath(event.path) }
  return event
}
