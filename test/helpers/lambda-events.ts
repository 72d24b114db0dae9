/**
 * Hand-built AWS Lambda HTTP events, shaped like the ones each front door delivers: API Gateway
 * HTTP API (payload 2.0 and 1.0), REST API (payload 1.0), Lambda Function URLs and ALB. The path is
 * what that front door hands the function for a request the client sent with `sentPath` (encoded):
 * REST API, Function URLs and ALB keep it encoded, an HTTP API decodes it (httpApiPath).
 */
import type { ALBEvent, APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda'

export type FrontDoor = 'http-api-v2' | 'http-api-v1' | 'rest' | 'function-url' | 'alb'
export const FRONT_DOORS: FrontDoor[] = ['http-api-v2', 'http-api-v1', 'rest', 'function-url', 'alb']

export interface EventOptions { query?: Record<string, string>; headers?: Record<string, string>; body?: Buffer | string; requestId?: string }

/**
 * Live captures (hotsock/voker vokerhttp/testdata/ingress-paths.json, us-west-2, July 2026): the path
 * sent to an HTTP API, and the `rawPath` the function got (null: AWS answered 400 itself).
 */
export const HTTP_API_CAPTURES: Array<[sent: string, delivered: string | null]> = [
  ['/capture/plain', '/capture/plain'],
  ['/capture/space%20value', '/capture/space value'],
  ['/capture/question%3Fvalue', '/capture/question'],
  ['/capture/percent%25done', null],
  ['/capture/hash%23value', '/capture/hash#value'],
  ['/capture/slash%2Fvalue', '/capture/slash/value'],
  ['/capture/unicode-%CE%BB-%E4%B8%96%E7%95%8C', '/capture/unicode-λ-世界'],
  ['/capture/literal%252Fvalue', '/capture/literal/value'],
  ['/capture/literal%253Fvalue', '/capture/literal?value'],
  ['/capture/literal%2525value', '/capture/literal%value']
]

/** What an HTTP API makes of an encoded path: decoded, cut at a `?`, decoded again; null when refused. */
export function httpApiPath (sentPath: string): string | null {
  try {
    return decodeURIComponent(decodeURIComponent(sentPath).split('?')[0] ?? '')
  } catch {
    return null
  }
}

const requestIdOf = (opts: EventOptions): string => opts.requestId ?? `req-${Math.random().toString(36).slice(2)}`

function bodyOf (opts: EventOptions): { body: string | null; isBase64Encoded: boolean } {
  if (Buffer.isBuffer(opts.body)) return { body: opts.body.toString('base64'), isBase64Encoded: true }
  return { body: opts.body ?? null, isBase64Encoded: false }
}

/** A payload 2.0 event (HTTP API or Function URL): lower-case headers, `rawPath`, encoded `rawQueryString`. */
export function v2Event (door: 'http-api-v2' | 'function-url', method: string, sentPath: string, opts: EventOptions = {}): APIGatewayProxyEventV2 {
  const path = door === 'function-url' ? sentPath : httpApiPath(sentPath)
  if (path === null) throw new Error(`an HTTP API refuses ${sentPath} before the function runs`)
  const domainName = door === 'function-url' ? 'abc123.lambda-url.eu-west-1.on.aws' : 'abc123.execute-api.eu-west-1.amazonaws.com'
  const now = new Date()
  const { body, isBase64Encoded } = bodyOf(opts)
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: new URLSearchParams(opts.query ?? {}).toString(),
    ...(opts.query === undefined ? {} : { queryStringParameters: opts.query }),
    headers: { host: domainName, 'user-agent': 'tap', 'x-forwarded-proto': 'https', ...(opts.headers ?? {}) },
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      domainName,
      domainPrefix: 'abc123',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'tap' },
      requestId: requestIdOf(opts),
      routeKey: '$default',
      stage: '$default',
      time: now.toUTCString(),
      timeEpoch: now.getTime()
    },
    ...(body === null ? {} : { body }),
    isBase64Encoded
  }
}

/**
 * A payload 1.0 event: from a REST API (encoded `path`, stage `live` in `requestContext.path`, no
 * `version`) or from an HTTP API (`version: '1.0'`, decoded `path`); decoded query values either way.
 */
export function v1Event (door: 'http-api-v1' | 'rest', method: string, sentPath: string, opts: EventOptions = {}): APIGatewayProxyEvent & { version?: string } {
  const path = door === 'rest' ? sentPath : httpApiPath(sentPath)
  if (path === null) throw new Error(`an HTTP API refuses ${sentPath} before the function runs`)
  const stage = door === 'rest' ? 'live' : '$default'
  const domainName = 'abc123.execute-api.eu-west-1.amazonaws.com'
  const headers = { Host: domainName, 'User-Agent': 'tap', 'X-Forwarded-Proto': 'https', ...(opts.headers ?? {}) }
  const query = opts.query
  const { body, isBase64Encoded } = bodyOf(opts)
  return {
    ...(door === 'http-api-v1' ? { version: '1.0' } : {}),
    resource: '/{proxy+}',
    path,
    httpMethod: method,
    headers,
    multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
    queryStringParameters: query ?? null,
    multiValueQueryStringParameters: query === undefined ? null : Object.fromEntries(Object.entries(query).map(([k, v]) => [k, [v]])),
    pathParameters: { proxy: path.slice(1) },
    stageVariables: null,
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      authorizer: null,
      domainName,
      domainPrefix: 'abc123',
      httpMethod: method,
      identity: { sourceIp: '203.0.113.7', userAgent: 'tap' } as APIGatewayProxyEvent['requestContext']['identity'],
      path: door === 'rest' ? `/${stage}${path}` : path,
      protocol: 'HTTP/1.1',
      requestId: requestIdOf(opts),
      requestTimeEpoch: Date.now(),
      resourceId: 'res1',
      resourcePath: '/{proxy+}',
      stage
    },
    body,
    isBase64Encoded
  }
}

/** An Application Load Balancer event: the path and the query values as sent (still encoded). */
export function albEvent (method: string, sentPath: string, opts: EventOptions = {}): ALBEvent {
  const { body, isBase64Encoded } = bodyOf(opts)
  return {
    requestContext: { elb: { targetGroupArn: 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/skv/0123456789abcdef' } },
    httpMethod: method,
    path: sentPath,
    queryStringParameters: Object.fromEntries(Object.entries(opts.query ?? {}).map(([k, v]) => [encodeURIComponent(k), encodeURIComponent(v)])),
    headers: { host: 'skv-alb-123.eu-west-1.elb.amazonaws.com', 'user-agent': 'tap', 'x-forwarded-proto': 'https', ...(opts.headers ?? {}) },
    body,
    isBase64Encoded
  }
}

/** An event from `door` for a request the client sent as `sentPath` (already encoded). */
export function eventFor (door: FrontDoor, method: string, sentPath: string, opts: EventOptions = {}): APIGatewayProxyEventV2 | APIGatewayProxyEvent | ALBEvent {
  if (door === 'alb') return albEvent(method, sentPath, opts)
  return door === 'http-api-v2' || door === 'function-url' ? v2Event(door, method, sentPath, opts) : v1Event(door, method, sentPath, opts)
}

/** How a client encodes a key for `door`: twice for an HTTP API when the key holds `?` or `%`. */
export function keyPath (door: FrontDoor, key: string): string {
  const once = encodeURIComponent(key)
  const twice = door.startsWith('http-api') && /[?%]/.test(key)
  return `/kv/${twice ? encodeURIComponent(once) : once}`
}
