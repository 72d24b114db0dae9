/**
 * Read-only scripts on replicas (issue 12 req 2) and the SDK behaviours the Upstash endpoint keeps
 * (req 4), against a real Sentinel topology (1 master, 2 replicas, 3 sentinels):
 * - EVALSHA_RO of a script cached only on the master (Redis copies no script cache to replicas):
 *   a replica's NOSCRIPT sends the read-only batch to the master, in single commands, pipelines
 *   and transactions, so the answer is always right; a script cached nowhere still answers NOSCRIPT.
 * - The SDK driven as an application does: base64 replies (its default) and plain ones, binary-safe
 *   and non-ASCII values, read-your-writes across a pipeline and a transaction, error shapes.
 */
import { Redis, type RedisConfigNodejs } from '@upstash/redis'
import t from 'tap'
import { withClient } from './helpers/chaos-load.js'
import { startInProcess, untilSettled } from './helpers/gateway.js'
import { commandCalls } from './helpers/kv-client.js'
import { topologyFor } from './helpers/topology.js'

const ADMIN = 'scripts-admin-t0ken'
const READER = 'scripts-reader-t0ken'
const topo = await topologyFor(t)
// round-robin (the default) prefers replicas for every read; pinned so the test does not depend on the default.
const gw = await startInProcess(t, topo, { AUTH_TOKENS: `${ADMIN}:rwxp,${READER}:rx`, REDIS_READ_STRATEGY: 'round-robin' })
const P = `scr:${process.pid}:${Date.now()}:`
/** An SDK client; `extra` may hold options the SDK reads but does not type (responseEncoding). */
const sdk = (token: string, extra: Record<string, unknown> = {}): Redis =>
  new Redis({ url: gw.url, token, enableTelemetry: false, retry: false, ...extra } as RedisConfigNodejs)
const redis = sdk(ADMIN)

interface Raw { status: number; headers: Headers; json: unknown }
async function post (path: string, body: unknown, token = ADMIN, headers: Record<string, string> = {}): Promise<Raw> {
  const r = await fetch(`${gw.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, ...headers }, body: JSON.stringify(body), signal: AbortSignal.timeout(15_000) })
  return { status: r.status, headers: r.headers, json: await r.json() }
}

await untilSettled(gw.app)
const master = await topo.master()
const replicas = topo.redis.filter(r => r.alive && r.port !== master.port).map(r => r.port)

// A script no other test runs: its digest is in no node's cache until this test loads it.
const SCRIPT = `return {redis.call('GET', KEYS[1]), ARGV[1], '${P}'}`
const key = `${P}k`
await redis.set(key, 'stored')

t.test('EVALSHA_RO of a script cached only on the master: always answered, never NOSCRIPT', async t => {
  // SCRIPT LOAD is refused by the gateway by design (script management): loaded on the master directly.
  const sha = await withClient(topo, master.port, async c => await c.script('LOAD', SCRIPT) as string)
  for (const port of replicas) t.same(await withClient(topo, port, async c => await c.script('EXISTS', sha)), [0], `replica :${port} does not have it`)
  const before = await Promise.all(replicas.map(async port => await withClient(topo, port, async c => await commandCalls(c, 'evalsha_ro'))))

  for (let i = 0; i < 10; i++) {
    const r = await post('/', ['EVALSHA_RO', sha, '1', key, `a${i}`])
    t.equal(r.status, 200, `call ${i}: 200`)
    t.same(r.json, { result: ['stored', `a${i}`, P] }, `call ${i}: the script's answer`)
    t.equal(r.headers.get('x-served-by'), 'master', `call ${i}: answered by the master`)
  }
  const after = await Promise.all(replicas.map(async port => await withClient(topo, port, async c => await commandCalls(c, 'evalsha_ro'))))
  t.ok(after.every((n, i) => n > before[i]!), `the replicas were tried first (calls ${before.join(',')} -> ${after.join(',')}): the read strategy still prefers them`)

  const pipe = await post('/pipeline', [['GET', key], ['EVALSHA_RO', sha, '1', key, 'p'], ['EVALSHA_RO', sha, '1', key, 'q']])
  t.equal(pipe.status, 200)
  t.same(pipe.json, [{ result: 'stored' }, { result: ['stored', 'p', P] }, { result: ['stored', 'q', P] }], 'a read pipeline: every entry answered')
  t.equal(pipe.headers.get('x-served-by'), 'master', 'by the master, as a whole')

  const tx = await post('/multi-exec', [['EVALSHA_RO', sha, '1', key, 'm'], ['GET', key]])
  t.equal(tx.status, 200)
  t.same(tx.json, [{ result: ['stored', 'm', P] }, { result: 'stored' }], 'a transaction runs on the master anyway')

  t.same(await redis.evalshaRo(sha, [key], ['sdk']), ['stored', 'sdk', P], 'the SDK\'s evalshaRo')
  t.same(await sdk(READER).evalshaRo(sha, [key], ['r']), ['stored', 'r', P], 'a token with r and x (no w) runs it')

  const synced = await post('/', ['EVALSHA_RO', sha, '1', key, 's'], ADMIN, { 'upstash-sync-token': '1' })
  t.same(synced.json, { result: ['stored', 's', P] }, 'with a sync token too')
  t.match(synced.headers.get('upstash-sync-token') ?? '', /^[0-9]+$/, 'answering the master\'s offset')

  // Once a replica has the script, it serves it again.
  await Promise.all(replicas.map(async port => await withClient(topo, port, async c => await c.script('LOAD', SCRIPT))))
  const served = new Set<string>()
  for (let i = 0; i < 4; i++) {
    const r = await post('/', ['EVALSHA_RO', sha, '1', key, 'x'])
    t.same(r.json, { result: ['stored', 'x', P] })
    served.add(r.headers.get('x-served-by') ?? '')
  }
  t.same([...served], ['replica'], 'a replica that has the script answers it')
})

t.test('a script cached nowhere still answers NOSCRIPT (400; its own entry in a pipeline)', async t => {
  const missing = 'f'.repeat(40)
  const r = await post('/', ['EVALSHA_RO', missing, '1', key])
  t.equal(r.status, 400)
  t.match(r.json, { error: /^NOSCRIPT/ })
  const pipe = await post('/pipeline', [['GET', key], ['EVALSHA_RO', missing, '1', key]])
  t.equal(pipe.status, 200)
  t.match(pipe.json, [{ result: 'stored' }, { error: /^NOSCRIPT/ }])
  await t.rejects(redis.evalshaRo(missing, [key], []), /NOSCRIPT/, 'the SDK sees the Redis error')
  // The SDK's read-only script object falls back to EVAL_RO on NOSCRIPT by itself.
  const s = redis.createScript<string, true>(`return 'ro-${P}'`, { readonly: true })
  t.equal(await s.exec([key], []), `ro-${P}`)
})

t.test('FCALL_RO of a function loaded on the master', async t => {
  const lib = `scr_${process.pid}_${Date.now()}`
  await withClient(topo, master.port, async c => await c.call('FUNCTION', 'LOAD',
    `#!lua name=${lib}\nredis.register_function{function_name='${lib}_get', callback=function(keys) return redis.call('GET', keys[1]) end, flags={'no-writes'}}`))
  for (let i = 0; i < 4; i++) {
    const r = await post('/', ['FCALL_RO', `${lib}_get`, '1', key])
    t.same(r.json, { result: 'stored' }, `call ${i}: answered (replicated function, or the master)`)
  }
  const none = await post('/', ['FCALL_RO', `${lib}_nope`, '1', key])
  t.equal(none.status, 400)
  t.match(none.json, { error: /Function not found/ }, 'a function that exists nowhere: the Redis error')
  t.equal(none.headers.get('x-served-by'), 'master', 'given by the master, after a replica said it lacks the function')
  await withClient(topo, master.port, async c => await c.call('FUNCTION', 'DELETE', lib))
})

t.test('the SDK: base64 and plain replies, binary and non-ASCII values, read-your-writes across pipelines and transactions', async t => {
  const text = 'héllo wörld ✓ 🚀 \u0000 end'
  for (const [what, client] of [['base64 (the SDK default)', redis], ['plain (responseEncoding: false)', sdk(ADMIN, { responseEncoding: false })]] as const) {
    await client.set(`${P}u`, text)
    t.equal(await client.get(`${P}u`), text, `${what}: non-ASCII text round trips`)
    await client.hset(`${P}h`, { 'clé': 'välue', n: '1' })
    t.same(await client.hgetall(`${P}h`), { 'clé': 'välue', n: 1 }, `${what}: HGETALL`)
    t.same(await client.pipeline().get(`${P}u`).hget(`${P}h`, 'clé').exec(), [text, 'välue'], `${what}: pipeline`)
    t.same(await client.multi().get(`${P}u`).strlen(`${P}u`).exec(), [text, Buffer.byteLength(text)], `${what}: transaction`)
  }
  const b64 = await post('/', ['GET', `${P}u`], ADMIN, { 'upstash-encoding': 'base64' })
  t.equal(Buffer.from((b64.json as { result: string }).result, 'base64').toString('utf8'), text, 'the wire: base64 of the UTF-8 bytes')

  // Read-your-writes: a write through a pipeline or a transaction moves the SDK's token, and the next read sees it.
  const client = sdk(ADMIN)
  await client.pipeline().set(`${P}ryw`, 'p1').incr(`${P}ryw:n`).exec()
  const afterPipe = client.readYourWritesSyncToken ?? ''
  t.match(afterPipe, /^[0-9]+$/, 'a pipeline answers the master offset')
  t.equal(await client.get(`${P}ryw`), 'p1', 'the next read sees the pipeline\'s write')
  await client.multi().set(`${P}ryw`, 'm1').incr(`${P}ryw:n`).exec()
  t.ok(BigInt(client.readYourWritesSyncToken ?? '0') > BigInt(afterPipe), 'a transaction moves the token forward')
  t.same(await client.pipeline().get(`${P}ryw`).get(`${P}ryw:n`).exec(), ['m1', 2], 'a read pipeline sees the transaction\'s writes')
  const ahead = await post('/pipeline', [['GET', `${P}ryw`]], ADMIN, { 'upstash-sync-token': '999999999999999' })
  t.equal(ahead.headers.get('x-served-by'), 'master', 'a token no replica reached: the master answers a pipeline too')

  // Error shapes as the SDK reads them.
  await t.rejects(client.multi().set(`${P}e`, '1').flushall().exec(), /FLUSHALL.*not available/, 'a transaction the gateway refuses: the SDK throws the message')
  t.equal(await client.exists(`${P}e`), 0, 'and nothing of it ran')
  const tx = await post('/multi-exec', [['SET', `${P}e2`, 'x'], ['INCR', `${P}e2`]])
  t.equal(tx.status, 200)
  t.match(tx.json, [{ result: 'OK' }, { error: /not an integer/ }], 'a runtime error inside a transaction: its own entry')
  const refused = await post('/multi-exec', [['SET', `${P}e3`, 'x'], ['FLUSHALL']])
  t.equal(refused.status, 400)
  t.match(refused.json, { error: /FLUSHALL.*not available/ }, 'a refused command refuses the transaction: 400 with {error}')
  t.equal(await client.exists(`${P}e3`), 0, 'nothing of it ran')
  const noperm = await post('/pipeline', [['GET', key], ['SET', key, 'x']], READER)
  t.equal(noperm.status, 200)
  t.match(noperm.json, [{ result: 'stored' }, { error: /^NOPERM/ }], 'NOPERM inside a pipeline: its own entry')
  const r403 = await post('/', ['SET', key, 'x'], READER)
  t.equal(r403.status, 403)
  t.match(r403.json, { error: /^NOPERM/ })
})
