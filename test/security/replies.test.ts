/**
 * Requirement 6 at the connection layer (finding 3): the reply guard (src/redis/reply-guard.ts) on a
 * real connection, then through the gateway: a reply too deep for redis-parser or too large closes
 * only the command endpoint's connection it arrived on, never a /kv connection, is answered once
 * (never sent to another node), and the next commands work. The process-level replay of the review's
 * attack is test/security/attacks-replies.test.ts.
 */
import { execFile } from 'node:child_process'
import { Redis } from 'ioredis'
import t from 'tap'
import { guardReason, guardReplies } from '../../src/redis/reply-guard.js'
import { checkServers, securityEnv, TOKENS } from '../helpers/security.js'

const MAX_REPLY_BYTES = 65_536
const env = await securityEnv(t, { env: { UPSTASH_MAX_REPLY_BYTES: String(MAX_REPLY_BYTES), UPSTASH_MAX_REPLY_DEPTH: '32', REDIS_COMMAND_TIMEOUT_MS: '2000' } })
const { topo } = env
const nested = (depth: number): string => `local t={} local c=t for i=1,${depth} do local n={} c[1]=n c=n end return t`

/** A guarded client of the master, as the gateway's pools build them (closed on teardown). */
function guarded (maxReplyBytes?: number): Redis {
  const c = new Redis({ host: '127.0.0.1', port: env.masterPort, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 50 })
  c.on('error', () => {})
  guardReplies(c, maxReplyBytes === undefined ? {} : { maxReplyBytes })
  t.teardown(() => c.disconnect())
  return c
}
const readyOf = async (c: Redis): Promise<void> => {
  for (let i = 0; i < 100 && c.status !== 'ready'; i++) await new Promise(resolve => setTimeout(resolve, 20))
}

t.test('a reply nested too deep for the parser: its RangeError closes the connection instead of the process', async t => {
  // A child process with a small stack (the real guard and parser on a real connection): in this
  // worker's larger stack the parser sometimes copes with every 64 KB chunk, so whether it overflowed
  // was a matter of load and JIT. 20,000 levels overflow a 200 KB stack in any chunk of >= 4 KB.
  const child = await new Promise<{ code: number | null; stdout: string; stderr: string }>(resolve => {
    execFile(process.execPath, ['--stack-size=200', 'dist/test/helpers/deep-reply.js', String(env.masterPort)], { timeout: 30_000 },
      (err, stdout, stderr) => { resolve({ code: err === null ? 0 : (typeof err.code === 'number' ? err.code : null), stdout, stderr }) })
  })
  t.equal(child.code, 0, `the process survives (exit ${String(child.code)} ${child.stderr.slice(0, 500)})`)
  const out = JSON.parse(child.stdout.trim().split('\n').pop() ?? '{}') as { error: string | null; reason: string | null; replaced: boolean; pong: string }
  t.ok(out.error !== null, `the command fails (${out.error ?? ''})`)
  t.equal(out.reason, 'depth', 'the guard closed that connection: reason depth')
  t.ok(out.replaced, 'a new connection replaced it')
  t.equal(out.pong, 'PONG', 'and the next command works')
})

t.test('a reply larger than the limit closes the connection while it arrives, not after', async t => {
  await env.master.set('replies:huge', Buffer.alloc(16 * 1024 * 1024, 'h'))
  const c = guarded(MAX_REPLY_BYTES)
  await readyOf(c)
  const stream = c.stream
  const err = await c.getBuffer('replies:huge').then(() => null, (e: Error) => e)
  t.ok(err !== null, 'GET of a 16 MB value fails')
  t.equal(guardReason(stream), 'bytes', 'reason: bytes')
  t.ok(stream.bytesRead < 4 * 1024 * 1024, `closed after ${stream.bytesRead} bytes of 16 MB`)
  await readyOf(c)
  t.equal(await c.ping(), 'PONG', 'the next command works')
  await env.master.del('replies:huge')
})

/** Ids of the master's client connections with this name (CLIENT LIST as the default user). */
async function clientIds (name: string): Promise<string[]> {
  const list = String(await env.master.call('CLIENT', 'LIST'))
  return list.split('\n').filter(l => l.includes(` name=${name} `)).map(l => /^id=(\d+)/.exec(l)![1]!).sort()
}
/** `cmdstat_<name>` calls on every redis node, by port. */
async function callsOn (cmd: string): Promise<Record<number, number>> {
  const out: Record<number, number> = {}
  for (const r of topo.redis) {
    const info = String(await env.on(r.port, async c => await c.info('commandstats')))
    out[r.port] = Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(info)?.[1] ?? 0)
  }
  return out
}
const post = async (path: string, body: unknown): Promise<{ status: number; json: unknown }> => {
  const r = await fetch(`${env.url}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { authorization: `Bearer ${TOKENS.admin}` }, signal: AbortSignal.timeout(10_000) })
  return { status: r.status, json: await r.json() }
}

t.test('through the gateway: one node runs it once, only a command connection is closed, /kv is untouched', async t => {
  t.equal((await post('/', ['SET', 'replies:warm', '1'])).status, 200, 'the command endpoint\'s connections are open')
  const kvBefore = await clientIds('skv-gateway')
  const cmdBefore = await clientIds('skv-gateway-commands')
  const before = await callsOn('eval')
  const deep = await post('/', ['EVAL', nested(5000), '0'])
  t.same(deep, { status: 400, json: { error: 'ERR the reply is nested deeper than UPSTASH_MAX_REPLY_DEPTH' } }, 'EVAL nested 5000: 400 JSON error')
  const after = await callsOn('eval')
  t.same(topo.redis.filter(r => after[r.port]! > before[r.port]!).map(r => r.port), [env.masterPort], 'the master ran it, no other node')
  t.same(await clientIds('skv-gateway'), kvBefore, 'the /kv connections are the same ones')
  t.not((await clientIds('skv-gateway-commands')).join(), cmdBefore.join(), 'a command connection was replaced')
  const roBefore = await callsOn('eval_ro')
  t.equal((await post('/', ['EVAL_RO', nested(5000), '0'])).status, 400, 'EVAL_RO nested 5000 (a read, served by a replica): 400')
  const roAfter = await callsOn('eval_ro')
  const runs = topo.redis.reduce((n, r) => n + roAfter[r.port]! - roBefore[r.port]!, 0)
  t.equal(runs, 1, 'exactly one node ran the read: its reply is never sent to another node')

  await env.master.set('replies:big', Buffer.alloc(1024 * 1024, 'b'))
  t.same(await post('/', ['GET', 'replies:big']), { status: 400, json: { error: 'ERR the reply is larger than UPSTASH_MAX_REPLY_BYTES' } }, 'GET of 1 MB: 400 JSON error')
  const many = await post('/pipeline', Array.from({ length: 40 }, () => ['GETRANGE', 'replies:big', '0', '4095']))
  const entries = many.json as Array<{ result?: string; error?: string }>
  const passed = entries.filter(e => e.result !== undefined).length
  t.ok(passed > 0 && passed * 4096 <= MAX_REPLY_BYTES, `a pipeline of 40 x 4 KB: the first ${passed} answered, within UPSTASH_MAX_REPLY_BYTES`)
  t.ok(entries.slice(passed).every(e => e.error === 'ERR the reply is larger than UPSTASH_MAX_REPLY_BYTES'), 'the rest answer the size error')

  t.same(await post('/', ['GET', 'replies:warm']), { status: 200, json: { result: '1' } }, 'the next command works')
  const put = await fetch(`${env.url}/kv/replies:kv`, { method: 'PUT', body: 'v', headers: { authorization: `Bearer ${TOKENS.admin}` } })
  t.equal(put.status, 201, 'PUT /kv works')
  t.same(await clientIds('skv-gateway'), kvBefore, 'the /kv connections were never closed')
  await env.master.del('replies:big')
  await checkServers(t, env, { what: 'after the reply attacks' })
})
