/**
 * Finding 7 (high): blocking past the check. `XREADGROUP GROUP g STREAMS BLOCK 20000 STREAMS k >`
 * (a consumer named STREAMS) passed the gateway's BLOCK scan; two of them parked both pooled master
 * connections and every other client's PUT got 504 for 20 s. Replayed with BLOCK 3000 (bounded):
 * every blocking form is refused (or, if ever admitted, answers within its timeout), and /kv writes
 * of another client sent while two of them are in flight answer fast.
 */
import t, { type Test } from 'tap'
import { checkServers, securityEnv, TOKENS } from '../helpers/security.js'
import { refusalProblems, label, ROUTES, send, JSON_ROUTES, type Outcome } from '../helpers/security-http.js'

const BLOCK_MS = 3000
const env = await securityEnv(t, { env: { REQUEST_RETRY_BUDGET_MS: '2000' } })
await env.master.call('XGROUP', 'CREATE', 'k', 'g', '$', 'MKSTREAM')
await env.master.call('XGROUP', 'CREATE', 'session:k', 'g', '$', 'MKSTREAM')
await env.master.call('WAIT', '2', '2000')

const B = String(BLOCK_MS)
/** Blocking forms, each with the key of the review or an equivalent. */
const BLOCKING: string[][] = [
  ['XREADGROUP', 'GROUP', 'g', 'STREAMS', 'BLOCK', B, 'STREAMS', 'k', '>'],
  ['XREADGROUP', 'GROUP', 'g', 'c', 'BLOCK', B, 'STREAMS', 'k', '>'],
  ['XREADGROUP', 'GROUP', 'g', 'BLOCK', 'BLOCK', B, 'STREAMS', 'k', '>'],
  ['XREADGROUP', 'GROUP', 'g', 'c', 'COUNT', '1', 'block', B, 'STREAMS', 'k', '>'],
  ['XREAD', 'BLOCK', B, 'STREAMS', 'k', '$'],
  ['XREAD', 'COUNT', '1', 'BLOCK', B, 'STREAMS', 'k', '$'],
  ['BLPOP', 'empty:list', '3'],
  ['BRPOP', 'empty:list', '3'],
  ['BLMOVE', 'empty:list', 'empty:list2', 'LEFT', 'RIGHT', '3'],
  ['BRPOPLPUSH', 'empty:list', 'empty:list2', '3'],
  ['BLMPOP', '3', '1', 'empty:list', 'LEFT'],
  ['BZPOPMIN', 'empty:zset', '3'],
  ['BZPOPMAX', 'empty:zset', '3'],
  ['BZMPOP', '3', '1', 'empty:zset', 'MIN'],
  ['WAIT', '3', B]
]

/** Refused (400), or admitted and answered within its own timeout (+1 s). */
function blockedAtMost (t: Test, o: Outcome, cmd: string[]): void {
  const refused = refusalProblems(o, 400).length === 0
  t.ok(refused || (o.status === 200 && o.ms < BLOCK_MS + 1000),
    `${label('admin', o, cmd)} is refused 400 or answers within ${BLOCK_MS + 1000} ms (got ${o.status} in ${Math.round(o.ms)} ms: ${o.text.slice(0, 120)})`)
}

t.test('every blocking form is refused on every route', async t => {
  for (const cmd of BLOCKING) {
    for (const route of ROUTES) blockedAtMost(t, await send(env.url, TOKENS.admin, route, cmd, { timeoutMs: BLOCK_MS + 5000 }), cmd)
  }
  // A consumer named BLOCK does not block: Redis's parser reads it as the consumer name.
  const o = await send(env.url, TOKENS.admin, 'single', ['XREADGROUP', 'GROUP', 'g', 'BLOCK', 'COUNT', '1', 'STREAMS', 'k', '>'])
  t.ok(o.ms < 1000, `a consumer named BLOCK answers at once (${o.status} in ${Math.round(o.ms)} ms: ${o.text.slice(0, 120)})`)
})

t.test('two of the review\'s XREADGROUP in flight do not slow other clients\' PUT /kv', async t => {
  const cmd = BLOCKING[0]!
  const attacks = [
    send(env.url, TOKENS.admin, 'single', cmd, { timeoutMs: BLOCK_MS + 5000 }),
    send(env.url, TOKENS.admin, 'single', cmd, { timeoutMs: BLOCK_MS + 5000 }),
    send(env.url, TOKENS.admin, 'pipeline', cmd, { timeoutMs: BLOCK_MS + 5000 }),
    send(env.url, TOKENS.admin, 'multi', cmd, { timeoutMs: BLOCK_MS + 5000 })
  ]
  await new Promise(resolve => setTimeout(resolve, 200))
  const puts: Array<{ status: number | string; ms: number }> = []
  for (let i = 0; i < 6; i++) {
    const t0 = performance.now()
    const status = await fetch(`${env.url}/kv/session%3Aput${i}`, {
      method: 'PUT', body: 'v', headers: { authorization: `Bearer ${TOKENS.sess}`, 'content-type': 'application/octet-stream' }, signal: AbortSignal.timeout(10_000)
    }).then(async r => { await r.arrayBuffer(); return r.status }, (err: Error) => err.message)
    puts.push({ status, ms: Math.round(performance.now() - t0) })
  }
  const outs = await Promise.all(attacks)
  for (const o of outs) blockedAtMost(t, o, cmd)
  t.same(puts.filter(p => p.status !== 201 && p.status !== 200), [], 'every concurrent PUT /kv succeeded')
  t.ok(puts.every(p => p.ms < 1000), `every concurrent PUT /kv answered within 1 s (${puts.map(p => p.ms).join(' ')} ms)`)
  // The command endpoint of another client, too.
  const other = await send(env.url, TOKENS.sess, 'single', ['SET', 'session:other', 'x'])
  t.ok(other.status === 200 && other.ms < 1000, `another client's SET through POST / answers within 1 s (${other.status} in ${Math.round(other.ms)} ms)`)
  await checkServers(t, env, { what: 'after the blocking attacks' })
})

t.test('READER and SESS get the same refusals (and SESS its prefix check)', async t => {
  for (const route of JSON_ROUTES) {
    const r = await send(env.url, TOKENS.reader, route, BLOCKING[4]!, { timeoutMs: BLOCK_MS + 5000 })
    t.same(refusalProblems(r, 'any'), [], `${label('reader', r, BLOCKING[4]!)} is refused`)
    const s = await send(env.url, TOKENS.sess, route, ['XREADGROUP', 'GROUP', 'g', 'STREAMS', 'BLOCK', B, 'STREAMS', 'session:k', '>'], { timeoutMs: BLOCK_MS + 5000 })
    t.same(refusalProblems(s, 400), [], `${label('sess', s, ['XREADGROUP', '...', 'BLOCK', B, 'STREAMS', 'session:k', '>'])} is refused 400`)
  }
})
