/**
 * Child process of test/security/replies.test.ts: `node --stack-size=<small> dist/test/helpers/deep-reply.js <port>`.
 * A guarded client (src/redis/reply-guard.ts) of the Redis server on 127.0.0.1:<port> asks for a reply
 * nested 20,000 deep. With a small stack, redis-parser overflows on the first chunk it reads (in the
 * tap worker, with its larger stack, it sometimes parses every chunk, so where it overflows was not
 * deterministic). Prints one JSON line: the error, the guard's reason, whether a new connection
 * replaced the closed one, and the next command's answer. The process itself must survive to print it.
 */
import { Redis } from 'ioredis'
import { guardReason, guardReplies } from '../../src/redis/reply-guard.js'

const port = Number(process.argv[2])
const nested = (depth: number): string => `local t={} local c=t for i=1,${depth} do local n={} c[1]=n c=n end return t`
const readyOf = async (c: Redis): Promise<void> => {
  for (let i = 0; i < 100 && c.status !== 'ready'; i++) await new Promise(resolve => setTimeout(resolve, 20))
}

const c = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 50 })
c.on('error', () => {})
guardReplies(c)
await readyOf(c)
const stream = c.stream
const err = await c.callBuffer('EVAL_RO', nested(20_000), '0').then(() => null, (e: Error) => e)
const reason = guardReason(stream) ?? null
await readyOf(c)
const replaced = c.stream !== stream
const pong = await c.ping().catch((e: Error) => `error: ${e.message}`)
c.disconnect()
process.stdout.write(JSON.stringify({ error: err?.message ?? null, reason, replaced, pong }) + '\n')
