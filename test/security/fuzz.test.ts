/**
 * Requirement 13: a property-based fuzz of the command endpoint against the real topology.
 * Commands come from the server's own table (`COMMAND`: every command and subcommand, with its
 * arity; `COMMAND DOCS`: its argument tokens), arguments mix real keys inside and outside
 * `session:`, reserved `__skv:` keys, `__sentinel__:hello`, numbers (huge offsets included) and
 * keywords; they are sent by each token kind (ADMIN, READER, SESS, and an open gateway) through
 * every route (single, path form, pipeline, multi-exec). Nothing of the table is left out: the
 * summary line says how many commands of each family were sent and how they were answered.
 *
 * After each batch: serverProblems() (canaries on every node, the sentinels' master, every process,
 * only db0, /healthz), no answer slower than the retry budget + slack, no 5xx, the Upstash answer
 * shape, READER changed no byte, SESS no key outside `session:`, nobody a `__skv:` key.
 * Bounded: numRuns and a time limit per token kind (FUZZ_SECURITY_MS, default 20 s), no shrinking
 * (each run talks to live servers). Seed: FUZZ_SEED (printed; replay with the same seed).
 */
import fc from 'fast-check'
import t from 'tap'
import { argCount, readCommandTable, type TableCommand } from '../helpers/command-table.js'
import { startInProcess } from '../helpers/gateway.js'
import { CANARIES, outsideSession, securityEnv, serverProblems, snapshot, TOKENS } from '../helpers/security.js'
import { pathOf, type Route } from '../helpers/security-http.js'

const SEED = Number(process.env.FUZZ_SEED ?? 0x5ec0de)
const TIME_MS = Number(process.env.FUZZ_SECURITY_MS ?? 20_000)
const RUNS = Number(process.env.FUZZ_SECURITY_RUNS ?? 200)
const BUDGET_MS = 2000
/** Slack over the retry budget for one HTTP answer (connection, JSON, a loaded 2-core machine). */
const SLACK_MS = 1500

const started = Date.now()
const env = await securityEnv(t, { env: { REQUEST_RETRY_BUDGET_MS: String(BUDGET_MS), KV_MAX_VALUE_BYTES: '4096', UPSTASH_MAX_REPLY_BYTES: '65536' } })
const open = await startInProcess(t, env.topo, { REQUEST_RETRY_BUDGET_MS: String(BUDGET_MS), KV_MAX_VALUE_BYTES: '4096', UPSTASH_MAX_REPLY_BYTES: '65536' })
const table = await readCommandTable(env.master)

// Keys of every type, inside and outside the prefix (the fuzz's own; the canaries are the helper's).
for (const p of ['session:f', 'other:f', 'admin:f']) {
  await env.master.set(`${p}:s`, '12')
  await env.master.hset(`${p}:h`, 'a', '1', 'b', '2')
  await env.master.rpush(`${p}:l`, '1', '2', '3')
  await env.master.sadd(`${p}:set`, 'a', 'b')
  await env.master.zadd(`${p}:z`, 1, 'a', 2, 'b')
  await env.master.geoadd(`${p}:geo`, 0, 0, 'a', 0.001, 0.001, 'b')
  await env.master.pfadd(`${p}:hll`, 'a', 'b')
  await env.master.xadd(`${p}:st`, '*', 'f', 'v')
  await env.master.call('XGROUP', 'CREATE', `${p}:st`, 'g', '0')
}
await env.master.call('WAIT', '2', '2000')
t.comment(`command table: ${table.length} commands and subcommands; setup ${Date.now() - started} ms; seed ${SEED}`)

type Kind = 'reader' | 'sess' | 'admin' | 'open'
const SUFFIXES = ['s', 'h', 'l', 'set', 'z', 'geo', 'hll', 'st', 'new']
const RESERVED = ['__skv:canary', '__skv:ratelimit:token:token-1', '__sentinel__:hello', '__redis__:invalidate', '__keyspace@0__:*']
/** Every token kind may name these; the canaries by name only where the token may not write them. */
const KEYS: Record<Kind, string[]> = {
  reader: [...SUFFIXES.map(s => `session:f:${s}`), ...SUFFIXES.map(s => `other:f:${s}`), ...Object.keys(CANARIES), ...RESERVED],
  sess: [...SUFFIXES.map(s => `session:f:${s}`), ...SUFFIXES.map(s => `other:f:${s}`), ...Object.keys(CANARIES), ...RESERVED, 'session:*', 'other:*', '*'],
  admin: [...SUFFIXES.map(s => `admin:f:${s}`), ...SUFFIXES.map(s => `other:f:${s}`), ...RESERVED, '*'],
  open: [...SUFFIXES.map(s => `admin:f:${s}`), ...RESERVED, '*']
}
const NUMBERS = ['0', '1', '-1', '2', '3', '10', '100', '4097', '65536', '104857599', '838860792', '-104857599', '9223372036854775807', '1.5', 'inf', '-inf', '+inf', '*', '$', '>', '+', '-', '0-0', '#13107199', 'u8', 'i64']
const KEYWORDS = ['STORE', 'STOREDIST', 'BLOCK', 'STREAMS', 'DB', 'BY', 'GET', 'REPLACE', 'COUNT', 'MATCH', 'TYPE', 'LIMIT', 'KEYS', 'NX', 'XX', 'EX', 'PX', 'ASYNC', 'GROUP', 'ALPHA']
const allTokens = [...new Set(table.flatMap(c => c.tokens))]

const argArb = (kind: Kind, cmd: TableCommand): fc.Arbitrary<string> => fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...KEYS[kind]) },
  { weight: 3, arbitrary: fc.constantFrom(...NUMBERS) },
  { weight: 3, arbitrary: fc.constantFrom(...(cmd.tokens.length > 0 ? cmd.tokens : KEYWORDS)) },
  { weight: 1, arbitrary: fc.constantFrom(...KEYWORDS, ...allTokens) },
  { weight: 1, arbitrary: fc.string({ maxLength: 6 }) }
)

interface Gen { cmd: TableCommand; argv: string[] }
const cmdArb = (kind: Kind): fc.Arbitrary<Gen> => fc.constantFrom(...table).chain(cmd => {
  const [min, max] = argCount(cmd)
  return fc.tuple(fc.array(argArb(kind, cmd), { minLength: min, maxLength: max }), fc.boolean())
    .map(([args, lower]) => ({ cmd, argv: [...cmd.words.map(w => lower ? w.toLowerCase() : w), ...args] }))
})
interface Item { route: Route; gens: Gen[] }
const itemArb = (kind: Kind): fc.Arbitrary<Item> => fc.constantFrom<Route>('single', 'path', 'pipeline', 'multi').chain(route =>
  fc.array(cmdArb(kind), { minLength: 1, maxLength: route === 'single' || route === 'path' ? 1 : 3 }).map(gens => ({ route, gens })))
const batchArb = (kind: Kind): fc.Arbitrary<Item[]> => fc.array(itemArb(kind), { minLength: 3, maxLength: 6 })

/** Per family: commands sent, answered with a result, refused 403/NOPERM, answered 400/ERR, other. */
const stats = new Map<string, { sent: number; ok: number; noperm: number; err: number; other: number }>()
const count = (family: string, what: 'ok' | 'noperm' | 'err' | 'other'): void => {
  const s = stats.get(family) ?? { sent: 0, ok: 0, noperm: 0, err: 0, other: 0 }
  s.sent++
  s[what]++
  stats.set(family, s)
}

class Violation extends Error { override name = 'Violation' }

/** Sends one item; throws Violation for a slow answer, a 5xx, a body outside the Upstash shape. */
async function sendItem (base: string, token: string | undefined, item: Item): Promise<void> {
  const { route, gens } = item
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` }
  let path = '/'
  let method = 'POST'
  let body: string | undefined
  if (route === 'path') { path = pathOf(gens[0]!.argv); method = 'GET' } else {
    headers['content-type'] = 'application/json'
    body = JSON.stringify(route === 'single' ? gens[0]!.argv : gens.map(g => g.argv))
    if (route !== 'single') path = route === 'pipeline' ? '/pipeline' : '/multi-exec'
  }
  const what = `${route} ${JSON.stringify(gens.map(g => g.argv)).slice(0, 300)}`
  const t0 = performance.now()
  let res: Response
  try {
    res = await fetch(base + path, { method, headers, ...(body === undefined ? {} : { body }), signal: AbortSignal.timeout(BUDGET_MS + SLACK_MS + 2000) })
  } catch (err) { throw new Violation(`${what}: no answer (${(err as Error).message})`) }
  const text = await res.text()
  const ms = performance.now() - t0
  if (ms > BUDGET_MS + SLACK_MS) throw new Violation(`${what}: answered in ${Math.round(ms)} ms, over the retry budget ${BUDGET_MS} + ${SLACK_MS} ms`)
  if (res.status >= 500) throw new Violation(`${what}: HTTP ${res.status} ${text.slice(0, 200)}`)
  if (text.includes('    at ')) throw new Violation(`${what}: a stack trace in the body`)
  let parsed: unknown
  try { parsed = JSON.parse(text) } catch { throw new Violation(`${what}: body is not JSON: ${text.slice(0, 200)}`) }
  const isEntry = (v: unknown): v is { result?: unknown; error?: unknown } => v !== null && typeof v === 'object' && !Array.isArray(v) &&
    (Object.keys(v).join() === 'result' || (Object.keys(v).join() === 'error' && typeof (v as { error: unknown }).error === 'string'))
  const classify = (e: { result?: unknown; error?: unknown }): 'ok' | 'noperm' | 'err' => 'result' in e ? 'ok' : String(e.error).startsWith('NOPERM') ? 'noperm' : 'err'
  if (Array.isArray(parsed) && res.status === 200) {
    if (parsed.length !== gens.length || !parsed.every(isEntry)) throw new Violation(`${what}: not one {result}/{error} entry per command: ${text.slice(0, 200)}`)
    parsed.forEach((e, i) => count(gens[i]!.cmd.family, classify(e)))
  } else if (isEntry(parsed)) {
    const c = res.status === 200 && 'result' in parsed ? 'ok' : res.status === 403 ? 'noperm' : res.status === 400 ? (classify(parsed) === 'noperm' ? 'noperm' : 'err') : 'other'
    // 406: /subscribe and /psubscribe in the path form answer a stream only to a client that asks for one.
    if (c === 'other' && res.status !== 429 && res.status !== 413 && res.status !== 406) throw new Violation(`${what}: HTTP ${res.status} ${text.slice(0, 200)}`)
    for (const g of gens) count(g.cmd.family, c)
  } else throw new Violation(`${what}: HTTP ${res.status} with a body outside the Upstash shape: ${text.slice(0, 200)}`)
}

const KINDS: Array<{ kind: Kind; base: string; token: string | undefined; which: (k: string) => boolean }> = [
  // READER first: nothing has a TTL yet that could expire under it and look like a change.
  { kind: 'reader', base: env.url, token: TOKENS.reader, which: () => true },
  { kind: 'sess', base: env.url, token: TOKENS.sess, which: outsideSession },
  { kind: 'admin', base: env.url, token: TOKENS.admin, which: k => k.startsWith('__skv:') },
  { kind: 'open', base: open.url, token: undefined, which: k => k.startsWith('__skv:') }
]

for (const [i, { kind, base, token, which }] of KINDS.entries()) {
  // One seed per kind (derived from SEED), so the kinds do not replay the same sequence.
  const seed = SEED + i
  t.test(`${kind}: random commands from the server's table change nothing they may not, on every route`, async t => {
    const t0 = Date.now()
    let batches = 0
    const details = await fc.check(fc.asyncProperty(batchArb(kind), async batch => {
      const before = await snapshot(env.master)
      for (const item of batch) await sendItem(base, token, item)
      const problems = await serverProblems(env, { before, which })
      batches++
      if (problems.length > 0) throw new Violation(`after ${JSON.stringify(batch.map(i => [i.route, ...i.gens.map(g => g.argv)])).slice(0, 1500)}: ${problems.join('; ')}`)
    }), { seed, numRuns: RUNS, endOnFailure: true, plugins: [fc.interruptAfterTimeLimit(TIME_MS)] })
    if (details.failed) {
      const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)
      t.fail(`${kind}: property failed at run ${details.numRuns}: ${error}\nReplay: FUZZ_SEED=${SEED} npx tap test/security/fuzz.test.ts (seed of this kind: ${details.seed})`)
    } else {
      t.pass(`${kind}: ${batches} batches in ${Date.now() - t0} ms${details.interrupted ? ' (time limit reached before numRuns)' : ''}, seed ${seed}`)
    }
  })
}

t.test('summary', async t => {
  const rows = [...stats.entries()].sort((a, b) => b[1].sent - a[1].sent)
  const total = rows.reduce((n, [, s]) => n + s.sent, 0)
  const line = `security fuzz: ${total} commands (seed ${SEED}) | ` +
    rows.map(([f, s]) => `${f} ${s.sent}: ${s.ok} answered/${s.noperm} 403/${s.err} 400${s.other > 0 ? `/${s.other} other` : ''}`).join(' | ')
  t.comment(line)
  console.log(line)
  t.ok(total > 0, 'commands were sent')
  t.ok(stats.has('admin/dangerous'), 'admin/dangerous commands were among them (nothing of the table left out)')
})
