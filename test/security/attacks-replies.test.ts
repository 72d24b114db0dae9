/**
 * Finding 3 (critical) and requirement 6: replies are bounded and can never crash the process.
 * A script returning a table nested 5000 deep made redis-parser overflow the stack (uncaught
 * RangeError): the process exited. The gateway runs here as a real process (`node dist/src/server.js`)
 * so that a crash shows as that process exiting, not as the test runner dying.
 * READER (no x) is refused the script; ADMIN (x) runs it and gets a JSON error (too deep); replies
 * over UPSTASH_MAX_REPLY_BYTES and GET /kv of a value over KV_MAX_VALUE_BYTES answer an error.
 */
import t, { type Test } from 'tap'
import { checkServers, securityEnv, TOKENS } from '../helpers/security.js'
import { expectAnswered, expectRefused, label, send } from '../helpers/security-http.js'

const MAX_REPLY_BYTES = 65_536
const MAX_VALUE_BYTES = 65_536
const env = await securityEnv(t, {
  process: true,
  env: { UPSTASH_MAX_REPLY_BYTES: String(MAX_REPLY_BYTES), UPSTASH_MAX_REPLY_DEPTH: '32', KV_MAX_VALUE_BYTES: String(MAX_VALUE_BYTES) }
})
const proc = env.proc!

/**
 * A reply over a limit answers 400 `{"error":"ERR ..."}` on single, path and pipeline (its entry);
 * a transaction has already run when its reply arrives: 400, or 200 with the entry's `{"error":"ERR ..."}`.
 */
async function expectReplyRefused (t: Test, kind: 'admin' | 'reader', cmd: string[]): Promise<void> {
  await expectRefused(t, env.url, kind, TOKENS[kind], cmd, 400, ['single', 'path', 'pipeline'])
  const o = await send(env.url, TOKENS[kind], 'multi', cmd)
  const entry = Array.isArray(o.body) && o.body.length === 1 ? o.body[0] as Record<string, unknown> : undefined
  const ok = (o.status === 400 && /^\{"error":"ERR /.test(o.text)) ||
    (o.status === 200 && entry !== undefined && Object.keys(entry).join() === 'error' && String(entry.error).startsWith('ERR '))
  t.ok(ok, `${label(kind, o, cmd)} answers an ERR (400, or the transaction's error entry) (got ${o.status} ${o.text.slice(0, 160)})`)
}

const nested = (depth: number): string => `local t={} local c=t for i=1,${depth} do local n={} c[1]=n c=n end return t`

/** The process is still running and answers /healthz. */
async function stillUp (t: Test, what: string): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(proc.child.exitCode, null, `${what}: the gateway process is still running (output tail: ${proc.output().slice(-300)})`)
  const h = await fetch(`${env.url}/healthz`, { signal: AbortSignal.timeout(3000) }).then(r => r.status, (err: Error) => err.message)
  t.equal(h, 200, `${what}: /healthz answers 200`)
}

t.test('READER: the review\'s EVAL_RO is refused 403 (no script right) on every route', async t => {
  await expectRefused(t, env.url, 'reader', TOKENS.reader, ['EVAL_RO', nested(5000), '0'], 403)
  await expectRefused(t, env.url, 'sess', TOKENS.sess, ['EVAL_RO', nested(5000), '0'], 403)
  await stillUp(t, 'after READER/SESS EVAL_RO')
})

t.test('ADMIN (script right): a reply nested 5000 deep answers a JSON error and the process lives', async t => {
  for (const ev of ['EVAL_RO', 'EVAL']) {
    await expectReplyRefused(t, 'admin', [ev, nested(5000), '0'])
    await stillUp(t, `after ${ev} nested 5000`)
  }
  await expectRefused(t, env.url, 'admin', TOKENS.admin, ['EVAL_RO', nested(40), '0'], 400, ['single'])
  // The limit refuses deep replies, not every nested one.
  expectAnswered(t, await send(env.url, TOKENS.admin, 'single', ['EVAL_RO', nested(10), '0']), 'admin EVAL_RO nested 10 (under UPSTASH_MAX_REPLY_DEPTH)')
  await stillUp(t, 'after the deep replies')
})

t.test('a reply over UPSTASH_MAX_REPLY_BYTES answers an error on every route', async t => {
  await env.master.set('big:string', Buffer.alloc(MAX_REPLY_BYTES * 2, 'x'))
  await env.master.rpush('big:list', ...Array.from({ length: 2000 }, (_, i) => `${i}`.padEnd(100, '.')))
  await env.master.call('WAIT', '2', '2000')
  for (const kind of ['admin', 'reader'] as const) {
    await expectReplyRefused(t, kind, ['GET', 'big:string'])
    await expectReplyRefused(t, kind, ['LRANGE', 'big:list', '0', '-1'])
  }
  // 40 commands of 4 KB each: the whole pipeline's reply is over the limit although each entry is not.
  await env.master.set('mid:string', Buffer.alloc(4096, 'y'))
  const many = Array.from({ length: 40 }, () => ['GET', 'mid:string'])
  const r = await fetch(`${env.url}/pipeline`, { method: 'POST', headers: { authorization: `Bearer ${TOKENS.admin}`, 'content-type': 'application/json' }, body: JSON.stringify(many) })
  const text = await r.text()
  t.ok(text.length <= MAX_REPLY_BYTES * 1.5, `a pipeline of 40 x 4 KB answers at most ~UPSTASH_MAX_REPLY_BYTES (${text.length} bytes, HTTP ${r.status})`)
  await stillUp(t, 'after the large replies')
})

t.test('GET /kv of a value over KV_MAX_VALUE_BYTES answers a clear error instead of the value', async t => {
  const r = await fetch(`${env.url}/kv/big%3Astring`, { headers: { authorization: `Bearer ${TOKENS.admin}` } })
  const body = await r.text()
  t.ok(r.status >= 400, `GET /kv/big:string answers an error status (got ${r.status})`)
  t.ok(body.length < 2000, `the answer is not the value (${body.length} bytes)`)
  t.match(body, /"code":"GW_ERR_[A-Z_]+"/, 'a GatewayError JSON body')
  await stillUp(t, 'after GET /kv of an oversized value')
})

t.test('the servers and the process after every attack of this file', async t => {
  expectAnswered(t, await send(env.url, TOKENS.sess, 'single', ['SET', 'session:after', '1']), 'sess SET still works')
  await checkServers(t, env, { what: 'after the reply attacks' })
})
