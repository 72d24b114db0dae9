/** Strong ETags of stored values. */
import { hash } from 'node:crypto'

/**
 * The strong ETag of a value; the PUT script computes the same with redis.sha1hex. One-shot
 * `crypto.hash` (Node >= 20.12): ~5x cheaper than a Hash object for values of a few hundred bytes.
 */
export const etagOf = (value: Buffer): string => `"${hash('sha1', value, 'hex')}"`

/** Stored bytes with their strong ETag, or null for both: the key does not exist. */
export type ReadValue = { value: Buffer; etag: string } | { value: null; etag: null }

/** `value` with its ETag, computed once here for everyone who answers it. */
export function readValue (value: Buffer | null): ReadValue {
  return value === null ? { value: null, etag: null } : { value, etag: etagOf(value) }
}
