/**
 * One errors module: every error the gateway answers has a stable code, an HTTP status and,
 * where it came from a lower layer, a `cause` (logged, never sent to the client).
 */

/** Stable error codes with the HTTP status each maps to. The README's error table lists these. */
export const ERROR_CODES = {
  GW_ERR_BAD_REQUEST: 400,
  GW_ERR_KEY_INVALID: 400,
  GW_ERR_UNAUTHORIZED: 401,
  GW_ERR_FORBIDDEN: 403,
  GW_ERR_NOT_FOUND: 404,
  GW_ERR_KEY_NOT_FOUND: 404,
  GW_ERR_METHOD_NOT_ALLOWED: 405,
  GW_ERR_WRONG_TYPE: 409,
  GW_ERR_PRECONDITION_FAILED: 412,
  GW_ERR_VALUE_TOO_LARGE: 413,
  GW_ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  GW_ERR_RATE_LIMITED: 429,
  GW_ERR_HEADERS_TOO_LARGE: 431,
  GW_ERR_INTERNAL: 500,
  GW_ERR_REDIS_UNAVAILABLE: 503,
  GW_ERR_BREAKER_OPEN: 503,
  GW_ERR_OVERLOADED: 503,
  GW_ERR_WRITE_OUTCOME_UNKNOWN: 504
} as const

export type ErrorCode = keyof typeof ERROR_CODES

export class GatewayError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  /** Seconds for a `Retry-After` header, when the client should come back later. */
  readonly retryAfter?: number

  constructor (code: ErrorCode, message: string, opts: { cause?: unknown; retryAfter?: number } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'GatewayError'
    this.code = code
    this.statusCode = ERROR_CODES[code]
    if (opts.retryAfter !== undefined) this.retryAfter = opts.retryAfter
  }
}

/** 503: the retry budget ran out before any node could serve `what` (nothing was written). */
export function unavailable (what: string, cause: unknown): GatewayError {
  return new GatewayError('GW_ERR_REDIS_UNAVAILABLE', `no Redis node could serve this ${what} within the retry budget`, { cause, retryAfter: 1 })
}

/** The JSON body of every error answer. */
export interface ErrorBody { error: { code: string; message: string } }

export function errorBody (code: string, message: string): ErrorBody {
  return { error: { code, message } }
}
