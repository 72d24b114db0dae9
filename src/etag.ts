/** Strong ETags of stored values. */
import { createHash } from 'node:crypto'

/** The strong ETag of a value; the PUT script computes the same with redis.sha1hex. */
export const etagOf = (value: Buffer): string => `"${createHash('sha1').update(value).digest('hex')}"`

/** Stored bytes with their strong ETag, or null for both: the key does not exist. */
export type ReadValue = { value: Buffer; etag: string } | { value: null; etag: null }

/** `value` with its ETag, computed once here for everyone who answers it. */
export function readValue (value: Buffer | null): ReadValue {
  return value === null ? { value: null, etag: null } : { value, etag: etagOf(value) }
}
