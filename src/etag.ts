/** Strong ETags of stored values. */
import { createHash } from 'node:crypto'

/** The strong ETag of a value; the PUT script computes the same with redis.sha1hex. */
export const etagOf = (value: Buffer): string => `"${createHash('sha1').update(value).digest('hex')}"`
