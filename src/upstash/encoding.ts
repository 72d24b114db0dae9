/**
 * Redis replies (as ioredis hands them with callBuffer: Buffers, numbers, null, arrays, errors
 * inside arrays) to the JSON values of the Upstash REST answers.
 *
 * With `Upstash-Encoding: base64` (what @upstash/redis asks for by default) every string is sent
 * base64-encoded, so binary values survive; only a whole answer of "OK" is sent as is, as Upstash
 * does (the SDK passes "OK" through and base64-decodes every other string). Without it strings are
 * decoded as UTF-8.
 */

export type Encoding = 'base64' | 'utf8'

export type JsonValue = string | number | null | JsonValue[]

/** The Upstash-Encoding request header, case-insensitive; anything but base64 means plain strings. */
export function encodingOf (header: string | string[] | undefined): Encoding {
  const v = Array.isArray(header) ? header[0] : header
  return v !== undefined && v.trim().toLowerCase() === 'base64' ? 'base64' : 'utf8'
}

const OK = Buffer.from('OK')

/** One whole command answer (the value of `result`). */
export function encodeResult (value: unknown, enc: Encoding): JsonValue {
  if (Buffer.isBuffer(value) && value.equals(OK)) return 'OK'
  return encodeValue(value, enc)
}

function encodeValue (value: unknown, enc: Encoding): JsonValue {
  if (value === null || value === undefined) return null
  if (Buffer.isBuffer(value)) return value.toString(enc)
  if (typeof value === 'number') return value
  if (typeof value === 'string') return enc === 'base64' ? Buffer.from(value).toString('base64') : value
  if (Array.isArray(value)) return value.map(v => encodeValue(v, enc))
  // An error nested in a reply (only EXEC answers hold them, handled before this): its text.
  if (value instanceof Error) return enc === 'base64' ? Buffer.from(value.message).toString('base64') : value.message
  return String(value)
}
