/**
 * Property-based tests (fast-check) of the HTTP surface: ONE real Sentinel topology (1 master,
 * 2 replicas, 3 sentinels) and one in-process gateway with small limits and four tokens.
 *
 * Every answer of every property is also checked by FuzzClient against the invariants that hold
 * for any request while Redis is healthy (no 5xx, the {error:{code,message}} shape with a GW_ERR_
 * code matching the status, no stack trace or internal address in a body): see helpers/fuzz-http.ts.
 *
 * Each run first sets the keys it uses directly on the master (then WAITs for both replicas), so the
 * expected answers follow from the run alone. The seed is fixed (FUZZ_SEED overrides it); a failure
 * prints the seed, the path and the shrunk counterexample, e.g.
 *   FUZZ_SEED=<seed> npx tap test/fuzz.test.ts
 * Each property is bounded by numRuns and by a time limit (shrinking included).
 */
import { createHash } from 'node:crypto'
import fc from 'fast-check'
import t from 'tap'
import { startInProcess } from './helpers/gateway.js'
import { FuzzClient, InvariantError, describe, invariantViolations, rawExchange, STACK_MARKER, ADDRESS_MARKER, type Reply } from './helpers/fuzz-http.js'
import { topologyFor } from './helpers/topology.js'
import { ERROR_CODES } from '../src/errors.js'

const SEED = Number(process.env.FUZZ_SEED ?? 0x5e471e1)
/** Wall-clock bound of one property, shrinking included (the run counts below normally finish far sooner). */
const PROPERTY_TIME_LIMIT_MS = Number(process.env.FUZZ_TIME_LIMIT_MS ?? 4_000)
/** Multiplies every numRuns (FUZZ_RUNS_FACTOR=5 for a longer local session). */
const RUNS_FACTOR = Number(process.env.FUZZ_RUNS_FACTOR ?? 1)

const MAX_KEY = 64
const MAX_VALUE = 4096
const MAX_OPS = 8
const PREFIX = 'sc/é:'
const TOKENS = {
  rw: 'fuzz-rw-token-0001',
  ro: 'fuzz-ro-token-0002',
  sc: 'fuzz-scoped-rw-0003',
  rs: 'fuzz-scoped-ro-0004'
} as const
type TokenKind = keyof typeof TOKENS
const RIGHTS: Record<TokenKind, { read: boolean; write: boolean; prefix: string }> = {
  rw: { read: true, write: true, prefix: '' },
  ro: { read: true, write: false, prefix: '' },
  sc: { read: true, write: true, prefix: PREFIX },
  rs: { read: true, write: false, prefix: PREFIX }
}

// fast-check builds its full-Unicode tables on the first draw of unit 'binary': about 1 s of synchronous
// work (more under coverage). Done now, before the in-process gateway runs: during the first property
// it blocked the shared event loop and the gateway's load shedding (EVENT_LOOP_MAX_DELAY_MS=1000)
// rightly answered 503 GW_ERR_OVERLOADED to the requests that followed.
fc.sample(fc.string({ unit: 'binary', minLength: 1, maxLength: 4 }), 10)
fc.sample(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 4 }), 10)

const started = Date.now()
const topo = await topologyFor(t)
const gw = await startInProcess(t, topo, {
  AUTH_TOKENS: `${TOKENS.rw}:rw,${TOKENS.ro}:r,${TOKENS.sc}:rw:${PREFIX},${TOKENS.rs}:r:${PREFIX}`,
  KV_MAX_KEY_BYTES: String(MAX_KEY),
  KV_MAX_VALUE_BYTES: String(MAX_VALUE),
  BATCH_MAX_OPS: String(MAX_OPS),
  // Many requests of this fuzz carry bad tokens on purpose: each must answer 401, never the 429 of the 401 limit.
  AUTH_FAILURES_MAX: '0',
  // FUZZ_LOG_LEVEL=warn shows the gateway's own log (e.g. the cause behind a 500) while replaying a failure.
  ...(process.env.FUZZ_LOG_LEVEL === undefined ? {} : { LOG_LEVEL: process.env.FUZZ_LOG_LEVEL })
})
const api = new FuzzClient(gw.url)
t.teardown(() => api.close())
// No failover happens in this file: the master found now stays the master.
const master = topo.client((await topo.masterProc()).port)
t.teardown(() => master.disconnect())
t.comment(`topology and gateway up in ${Date.now() - started} ms; fast-check seed ${SEED}`)

const RW = { authorization: `Bearer ${TOKENS.rw}` }
const bytes = (s: string): number => Buffer.byteLength(s, 'utf8')
const etagOf = (b: Buffer): string => `"${createHash('sha1').update(b).digest('hex')}"`
const kvPath = (key: string, query = ''): string => `/kv/${encodeURIComponent(key)}${query === '' ? '' : `?${query}`}`
/** Keys unique to this file's run (the topology is this file's own, but runs of one property share it). */
let seq = 0
const fresh = (what: string): string => `${what}${(seq++).toString(36)}`

function expect (cond: boolean, what: string, r?: Reply): asserts cond {
  if (!cond) throw new InvariantError(r === undefined ? what : `${what}\n  answer: ${describe(r)}`)
}

/** The code of an error answer (its shape is already checked by FuzzClient). */
const codeOf = (r: Reply): string | undefined => (r.json as { error?: { code?: string } } | undefined)?.error?.code

/** Sets (or deletes) keys on the master, then waits until both replicas have the change. */
async function seed (entries: Array<[string, Buffer | null]>): Promise<void> {
  const p = master.pipeline()
  for (const [k, v] of entries) {
    if (v === null) p.del(k)
    else p.set(k, v)
  }
  await p.exec()
  const acked = Number(await master.call('WAIT', '2', '2000'))
  expect(acked === 2, `seeding reached ${acked} of 2 replicas`)
}

const onMaster = async (key: string): Promise<Buffer | null> => await master.getBuffer(key)

const same = (a: Buffer | null, b: Buffer | null): boolean => a === null ? b === null : b !== null && a.equals(b)

/** The counterexample with long byte arrays cut (length and first bytes kept) so the rest stays readable. */
function summarize (v: unknown): unknown {
  if (v instanceof Uint8Array && v.length > 48) return `<${v.length} bytes: ${Buffer.from(v.subarray(0, 16)).toString('hex')}...>`
  if (Array.isArray(v)) return v.map(summarize)
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, summarize(x)]))
  return v
}

/** Runs one property; a failure fails the tap test with fast-check's report (seed, path, shrunk counterexample). */
function property<Ts extends [unknown, ...unknown[]]> (name: string, numRuns: number, prop: fc.IAsyncProperty<Ts>): void {
  t.test(name, async t => {
    const runs = Math.max(1, Math.round(numRuns * RUNS_FACTOR))
    const before = Date.now()
    const sent = api.count
    const details = await fc.check(prop, {
      numRuns: runs,
      seed: SEED,
      plugins: [fc.interruptAfterTimeLimit(PROPERTY_TIME_LIMIT_MS * Math.max(1, RUNS_FACTOR))]
    })
    const ms = Date.now() - before
    if (details.failed) {
      const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)
      const example = fc.stringify(summarize(details.counterexample))
      const path = details.counterexamplePath ?? ''
      // Long counterexamples (4 KB values) and paths are cut: replay with FUZZ_SEED and the path to see them whole.
      t.fail([
        `${name}: property failed after ${details.numRuns} run(s), shrunk ${details.numShrinks} time(s)`,
        `Error: ${error}`,
        `Counterexample: ${example.length > 1500 ? `${example.slice(0, 1500)}... (${example.length} chars)` : example}`,
        `Replay: FUZZ_SEED=${details.seed} (fc path ${path.length > 120 ? `${path.slice(0, 120)}...` : path})`
      ].join('\n'))
    } else {
      t.pass(`${details.numRuns} runs, ${api.count - sent} requests, ${ms} ms${details.interrupted ? ' (time limit reached before numRuns)' : ''}`)
    }
  })
}

// ------------------------------------------------------------------------------------------------
// Arbitraries

/** URL-reserved characters (sent percent-encoded) and other troublemakers. */
const RESERVED = ['/', '?', '#', '%', '&', '+', ':', ';', '=', '@', '[', ']', ' ', '  ', '%2F', '%25', '%00', '.', '..', '\\', '"', '\'', '<', '>', '{', '}', '|', '^', '`', '~', '!', '*', '$', ',', '_batch']
const SPECIAL = ['😀', '👩‍👩‍👧', '🇫🇷', '𝔘', '\u{10FFFF}', '\u{1F3FB}', 'e\u0301', '\u0301', '\u0308\u0308', 'Å', 'A\u030A', '\u200D', '\uFEFF', '\u202E', '\u0000', '\n', '\r\n', '\t', '\u007F', '\u0085', '\u00A0', 'ﬁ', 'İ', 'ß', '中文', 'й', '٣']

const keyPiece = fc.oneof(
  fc.constantFrom(...RESERVED),
  fc.constantFrom(...SPECIAL),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 4 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 4 }),
  fc.string({ minLength: 1, maxLength: 8 })
)

/** Cuts `s` at a code point boundary so that it holds at most `max` UTF-8 bytes. */
function truncateBytes (s: string, max: number): string {
  let out = ''
  for (const ch of s) {
    if (bytes(out) + bytes(ch) > max) break
    out += ch
  }
  return out
}

/** Whole keys that URL handling likes to get wrong. */
const SPECIAL_KEYS = ['.', '..', '...', './a', '../a', 'a/..', '%', '%2F', '%252F', '_batch', '_batch/', ' ', '\u0000', '?', '#', '/', '//', '+', '~', '*', 'null', 'undefined', '__proto__', 'constructor']

/** A key of 1 to `max` bytes, made of the pieces above. */
const keyArb = (max = MAX_KEY): fc.Arbitrary<string> => fc.oneof(
  { weight: 5, arbitrary: fc.array(keyPiece, { minLength: 1, maxLength: 8 }).map(a => truncateBytes(a.join(''), max)).filter(k => k.length > 0) },
  { weight: 1, arbitrary: fc.constantFrom(...SPECIAL_KEYS) }
)

/** Characters of 1 to 4 UTF-8 bytes, to build keys of an exact byte length. */
const CHAR_POOL = ['a', 'Z', '/', '%', ' ', '?', '#', '+', 'é', 'ß', '\u0301', '€', '中', '\uFEFF', '😀', '𝔘', '\u0000']

/** A key of exactly `n` UTF-8 bytes, `n` mostly around MAX_KEY. */
const sizedKeyArb = fc.record({
  n: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: MAX_KEY - 6, max: MAX_KEY + 6 }) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: MAX_KEY * 6 }) }),
  chars: fc.array(fc.constantFrom(...CHAR_POOL), { minLength: 1, maxLength: 24 })
}).map(({ n, chars }) => {
  let key = ''
  for (let i = 0; i < n * 2; i++) {
    const c = chars[i % chars.length]!
    if (bytes(key) + bytes(c) > n) break
    key += c
  }
  while (bytes(key) < n) key += 'k'
  return key
})

/** Header values a client can really send (node:http refuses CR, LF, NUL and other controls). */
const headerChar = fc.oneof(
  fc.integer({ min: 0x20, max: 0x7e }).map(c => String.fromCharCode(c)),
  fc.integer({ min: 0x80, max: 0xff }).map(c => String.fromCharCode(c)),
  fc.constant('\t')
)
const headerString = fc.string({ unit: headerChar, maxLength: 60 })
const headerSafe = (v: string): boolean => /^[\t\x20-\x7e\x80-\xff]*$/.test(v)
/** How an HTTP server sees a header value: leading and trailing SP/HTAB removed. */
const ows = (v: string): string => v.replace(/^[ \t]+|[ \t]+$/g, '')

const hex40 = fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 40, maxLength: 40 })

// ------------------------------------------------------------------------------------------------
// 1. Keys: unicode and reserved characters round-trip exactly, and are stored under the decoded key.

property('random keys round-trip exactly and are stored on the master under exactly the decoded key', 80, fc.asyncProperty(
  keyArb(), fc.uint8Array({ maxLength: 64 }), fc.boolean(),
  async (key, raw, viaBatch) => {
    const value = Buffer.from(raw)
    await seed([[key, null]])
    const put = await api.request('PUT', kvPath(key), { headers: { ...RW, 'content-type': 'application/octet-stream' }, body: value })
    expect(put.status === 201, 'PUT of a new key answers 201', put)
    expect(put.headers.location === kvPath(key), `Location is ${JSON.stringify(kvPath(key))} (got ${JSON.stringify(put.headers.location)})`, put)
    expect(put.headers.etag === etagOf(value), 'PUT answers the ETag of the value', put)
    expect(same(await onMaster(key), value), `the master holds the value under exactly ${JSON.stringify(key)}`)

    const get = await api.request('GET', kvPath(key), { headers: RW })
    expect(get.status === 200 && get.body.equals(value), 'GET answers the exact bytes', get)
    expect(get.headers.etag === etagOf(value), 'GET answers the same ETag', get)
    const strong = await api.request('GET', kvPath(key, 'consistency=strong'), { headers: RW })
    expect(strong.status === 200 && strong.body.equals(value), 'strong GET answers the exact bytes', strong)
    if (viaBatch) {
      const b = await api.request('POST', '/kv/_batch', { headers: { ...RW, 'content-type': 'application/json' }, body: JSON.stringify({ ops: [{ op: 'get', key }], encoding: 'base64' }) })
      const res = (b.json as { results?: Array<{ status: number; value?: string }> } | undefined)?.results?.[0]
      expect(b.status === 200 && res?.status === 200 && res.value === value.toString('base64'), 'a batch get of the same key answers the same bytes', b)
    }
    const del = await api.request('DELETE', kvPath(key), { headers: RW })
    expect(del.status === 204, 'DELETE answers 204', del)
    expect(await onMaster(key) === null, 'the key is gone from the master')
    const gone = await api.request('GET', kvPath(key), { headers: RW })
    expect(gone.status === 404 && codeOf(gone) === 'GW_ERR_KEY_NOT_FOUND', 'GET after DELETE answers 404', gone)
  }
))

// 2. Key length in bytes around KV_MAX_KEY_BYTES.

property(`keys of up to KV_MAX_KEY_BYTES (${MAX_KEY}) bytes work, longer ones are 400 GW_ERR_KEY_INVALID on every route`, 60, fc.asyncProperty(
  sizedKeyArb, fc.constantFrom('GET', 'HEAD', 'PUT', 'DELETE', 'BATCH'),
  async (key, method) => {
    const fits = bytes(key) <= MAX_KEY
    const value = Buffer.from(`v:${key.length}`)
    if (fits) await seed([[key, method === 'PUT' ? null : value]])
    if (method === 'BATCH') {
      const b = await api.request('POST', '/kv/_batch', { headers: { ...RW, 'content-type': 'application/json' }, body: JSON.stringify({ ops: [{ op: 'get', key }] }) })
      const res = (b.json as { results?: Array<{ status: number; error?: { code: string } }> } | undefined)?.results?.[0]
      expect(b.status === 200, 'a batch answers 200', b)
      if (fits) expect(res?.status === 200, `a batch get of a ${bytes(key)}-byte key answers 200`, b)
      else expect(res?.status === 400 && res.error?.code === 'GW_ERR_KEY_INVALID', `a batch get of a ${bytes(key)}-byte key answers 400 GW_ERR_KEY_INVALID`, b)
      return
    }
    const r = await api.request(method, kvPath(key), { headers: { ...RW, 'content-type': 'text/plain' }, ...(method === 'PUT' ? { body: value } : {}) })
    if (fits) {
      const want = { GET: 200, HEAD: 200, PUT: 201, DELETE: 204 }[method]
      expect(r.status === want, `${method} of a ${bytes(key)}-byte key answers ${want}`, r)
      if (method === 'PUT') expect(same(await onMaster(key), value), 'stored under the exact key')
    } else {
      expect(r.status === 400, `${method} of a ${bytes(key)}-byte key answers 400`, r)
      if (method !== 'HEAD') expect(codeOf(r) === 'GW_ERR_KEY_INVALID', 'with GW_ERR_KEY_INVALID', r)
      if (method === 'PUT') expect(await onMaster(key) === null, 'nothing stored')
    }
  }
))

// 3. Values: random bytes, random content types, exact round trip; over KV_MAX_VALUE_BYTES is 413.

const WELL_FORMED_TYPES = [
  'application/octet-stream', 'text/plain', 'text/plain; charset=utf-8', 'text/plain;charset=ISO-8859-1', 'application/json',
  'application/json; charset=utf-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=----fuzz',
  'image/png', 'application/vnd.api+json', 'TEXT/PLAIN', 'application/xml', 'text/html; charset="utf-8"', 'application/problem+json'
]
const contentTypeArb = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...WELL_FORMED_TYPES).map(v => ({ kind: 'well-formed' as const, value: v as string | undefined })) },
  { weight: 2, arbitrary: fc.stringMatching(/^[a-z]{1,8}\/[a-z0-9][a-z0-9.+-]{0,12}(; ?[a-z]{1,6}=[a-z0-9]{1,6}){0,2}$/).map(v => ({ kind: 'well-formed' as const, value: v as string | undefined })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'none' as const, value: undefined }) },
  { weight: 2, arbitrary: fc.oneof(fc.constantFrom('', 'garbage', 'text/', '/json', ';;;', 'application/json;;', 'a/b; c', '*/*', 'text/plain; charset'), headerString).map(v => ({ kind: 'malformed' as const, value: v as string | undefined })) }
)
const valueArb = fc.oneof(
  { weight: 5, arbitrary: fc.uint8Array({ maxLength: 3000 }) },
  // Near and over the limit: the length shrinks, the (many) bytes do not.
  { weight: 2, arbitrary: fc.integer({ min: MAX_VALUE - 3, max: MAX_VALUE + 3 }).chain(n => fc.noShrink(fc.uint8Array({ minLength: n, maxLength: n }))) },
  { weight: 1, arbitrary: fc.integer({ min: MAX_VALUE + 4, max: MAX_VALUE * 3 }).chain(n => fc.noShrink(fc.uint8Array({ minLength: n, maxLength: n }))) }
)

/** Malformed Content-Types the gateway refused (shown in the summary). */
const refusedTypes = new Set<string>()

property(`random binary values with random content types round-trip exactly; over KV_MAX_VALUE_BYTES (${MAX_VALUE}) is 413`, 60, fc.asyncProperty(
  valueArb, contentTypeArb, fc.option(fc.integer({ min: 1, max: 5000 }), { nil: null }),
  async (raw, ct, chunkSize) => {
    const value = Buffer.from(raw)
    const key = fresh('val:')
    const headers: Record<string, string> = { ...RW }
    if (ct.value !== undefined) headers['content-type'] = ct.value
    // chunkSize: sent with Transfer-Encoding: chunked in pieces of that size (no Content-Length).
    const put = await api.request('PUT', kvPath(key), { headers, body: value, ...(chunkSize === null ? {} : { chunkSize }) })
    if (ct.kind === 'malformed' && (put.status === 415 || put.status === 400)) {
      refusedTypes.add(`${JSON.stringify(ct.value)} -> ${put.status}`)
      // A Content-Type that is not type/subtype: refusing it (415/400, before or after the size check) is acceptable.
      expect(await onMaster(key) === null, 'a refused value is not stored')
      return
    }
    if (value.length > MAX_VALUE) {
      expect(put.status === 413 && codeOf(put) === 'GW_ERR_VALUE_TOO_LARGE', `a ${value.length}-byte value answers 413 GW_ERR_VALUE_TOO_LARGE`, put)
      expect(await onMaster(key) === null, 'a refused value is not stored')
      return
    }
    expect(put.status === 201, `a ${value.length}-byte value with Content-Type ${JSON.stringify(ct.value)} answers 201`, put)
    expect(same(await onMaster(key), value), 'the master holds exactly the bytes sent')
    const get = await api.request('GET', kvPath(key), { headers: RW })
    expect(get.status === 200 && get.body.equals(value), 'GET answers exactly the bytes sent', get)
    expect(String(get.headers['content-type']).startsWith('application/octet-stream'), 'GET answers application/octet-stream', get)
    expect(get.headers.etag === etagOf(value), 'GET answers the SHA-1 ETag', get)
  }
))

// 4. ttl query values.

const TTL_SPECIALS = ['1', '2', '9', '10', '2147483647', '2147483646', '2147483648', '4294967296', '9999999999', '10000000000',
  '99999999999999999999999', '0', '00', '01', '007', '-1', '-0', '+5', '1.0', '1.5', '1e3', '1E3', '0x10', '0b1', '0o7', ' 5', '5 ',
  '５', '٣', '¹', 'NaN', 'Infinity', '-Infinity', 'null', 'true', '[]', '', '5,6', '5;6']
const ttlArb = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 2147483647 }).map(n => ({ query: `ttl=${n}`, raw: String(n) as string | null })) },
  { weight: 3, arbitrary: fc.constantFrom(...TTL_SPECIALS).map(s => ({ query: `ttl=${encodeURIComponent(s)}`, raw: s as string | null })) },
  { weight: 1, arbitrary: fc.integer({ min: -2147483648, max: 0 }).map(n => ({ query: `ttl=${n}`, raw: String(n) as string | null })) },
  { weight: 1, arbitrary: fc.double({ noNaN: false }).map(d => ({ query: `ttl=${encodeURIComponent(String(d))}`, raw: String(d) as string | null })) },
  { weight: 1, arbitrary: fc.bigInt({ min: 2n ** 31n, max: 2n ** 80n }).map(n => ({ query: `ttl=${n}`, raw: String(n) as string | null })) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }).map(s => ({ query: `ttl=${encodeURIComponent(s)}`, raw: s as string | null })) },
  // Raw query strings (raw: null = invalid whatever the parser makes of them).
  { weight: 1, arbitrary: fc.constantFrom('ttl', 'ttl=', 'ttl=5&ttl=6', 'ttl=%', 'ttl=%zz', 'ttl=%E0%A4%A', 'TTL=5', 'ttl=5&durability=bogus', 'ttl=5&foo=1', 'ttl[]=5', 'ttl[a]=5', 'ttl=5%00').map(q => ({ query: q, raw: null as string | null })) },
  { weight: 1, arbitrary: fc.constantFrom('ttl=5&durability=none', 'ttl=5&durability=replicated', 'durability=none&ttl=300').map(q => ({ query: q, raw: /ttl=(\d+)/.exec(q)![1]! as string | null })) }
)
/** The rule, independent of the implementation: plain decimal digits, no leading zero, 1 to 2^31-1. */
const validTtl = (raw: string | null): number | null => raw !== null && /^[1-9][0-9]*$/.test(raw) && BigInt(raw) <= 2147483647n ? Number(raw) : null

property('random ttl values: valid ones store with X-TTL <= ttl, invalid ones are 400 and store nothing', 80, fc.asyncProperty(
  ttlArb,
  async ({ query, raw }) => {
    const key = fresh('ttl:')
    const ttl = validTtl(raw)
    const put = await api.request('PUT', kvPath(key, query), { headers: { ...RW, 'content-type': 'text/plain' }, body: 'v' })
    if (ttl === null) {
      expect(put.status === 400 && codeOf(put) === 'GW_ERR_BAD_REQUEST', `?${query} answers 400 GW_ERR_BAD_REQUEST`, put)
      expect(await onMaster(key) === null, 'nothing stored')
      return
    }
    expect(put.status === 201, `?${query} answers 201`, put)
    // The master: a durability=none write may not have reached a replica yet.
    const get = await api.request('GET', kvPath(key, 'consistency=strong'), { headers: RW })
    if (ttl <= 2 && get.status === 404) return // may already have expired
    expect(get.status === 200, 'GET answers 200', get)
    const xttl = get.headers['x-ttl']
    expect(typeof xttl === 'string' && /^[0-9]+$/.test(xttl), `X-TTL is a number of seconds (got ${String(xttl)})`, get)
    const left = Number(xttl)
    expect(left <= ttl && left >= ttl - 5, `X-TTL ${left} is within [ttl-5, ttl] for ttl ${ttl}`, get)
    const pttl = await master.pttl(key)
    expect(pttl > 0 && pttl <= ttl * 1000, `the master has PTTL ${pttl} ms for ttl ${ttl} s`)
  }
))

// 5. Random conditional and sync headers.

/** A header value, resolved against the current ETag of the key inside the run. */
type HeaderChoice = { kind: 'literal'; value: string } | { kind: 'current' | 'current-weak' | 'current-upper' | 'current-list' | 'current-unquoted' }
const headerChoiceArb: fc.Arbitrary<HeaderChoice> = fc.oneof(
  fc.constantFrom('*', ' * ', '"*"', '**', '*,*', '', 'W/"abc"', '"', '""').map(value => ({ kind: 'literal' as const, value })),
  hex40.map(h => ({ kind: 'literal' as const, value: `"${h}"` })),
  hex40.map(h => ({ kind: 'literal' as const, value: `W/"${h}", "${h}"` })),
  headerString.map(value => ({ kind: 'literal' as const, value })),
  fc.constantFrom('current', 'current-weak', 'current-upper', 'current-list', 'current-unquoted').map(kind => ({ kind }) as HeaderChoice)
)
function resolveHeader (c: HeaderChoice, etag: string): string {
  switch (c.kind) {
    case 'literal': return c.value
    case 'current': return etag
    case 'current-weak': return `W/${etag}`
    case 'current-upper': return etag.toUpperCase()
    case 'current-list': return `"0000000000000000000000000000000000000000", ${etag}`
    case 'current-unquoted': return etag.slice(1, -1)
  }
}
const syncArb = fc.oneof(
  fc.bigInt({ min: 0n, max: 10n ** 20n - 1n }).map(String),
  fc.constantFrom('', '0', '00000000000000000000', '123456789012345678901', '-1', '1.5', '0x1f', '1e3', ' 7', 'abc', '١٢', '18446744073709551615', '18446744073709551616'),
  headerString
)
const SYNC_RE = /^[0-9]{1,20}$/

const headersCase = fc.oneof(
  fc.record({ mode: fc.constant('put' as const), ifMatch: fc.option(headerChoiceArb), ifNoneMatch: fc.option(headerChoiceArb) }),
  fc.record({ mode: fc.constant('get' as const), ifNoneMatch: fc.option(headerChoiceArb, { nil: null }), syncHeader: fc.option(syncArb.filter(headerSafe)), syncQuery: fc.option(syncArb) })
)

property('random If-Match / If-None-Match / X-Sync-Token values answer exactly 2xx, 304, 400 or 412 (never 5xx)', 80, fc.asyncProperty(
  headersCase, fc.boolean(), fc.uint8Array({ maxLength: 32 }),
  async (c, exists, raw) => {
    const key = fresh('hdr:')
    const old = Buffer.from(raw)
    await seed([[key, exists ? old : null]])
    const etag = etagOf(old)
    if (c.mode === 'put') {
      const im = c.ifMatch === null ? undefined : ows(resolveHeader(c.ifMatch, etag))
      const inm = c.ifNoneMatch === null ? undefined : ows(resolveHeader(c.ifNoneMatch, etag))
      const headers: Record<string, string> = { ...RW, 'content-type': 'application/octet-stream' }
      if (c.ifMatch !== null) headers['if-match'] = resolveHeader(c.ifMatch, etag)
      if (c.ifNoneMatch !== null) headers['if-none-match'] = resolveHeader(c.ifNoneMatch, etag)
      const value = Buffer.from('new value')
      // The documented rules (README, openapi): If-None-Match only "*", If-Match only "*" or one strong ETag, not both.
      let want: number
      if ((inm !== undefined && inm !== '*') || (im !== undefined && !/^\*$|^"[0-9a-f]{40}"$/.test(im)) || (inm !== undefined && im !== undefined)) want = 400
      else if (inm === '*') want = exists ? 412 : 201
      else if (im === '*') want = exists ? 200 : 412
      else if (im !== undefined) want = exists && im === etag ? 200 : 412
      else want = exists ? 200 : 201
      const put = await api.request('PUT', kvPath(key), { headers, body: value })
      expect(put.status === want, `PUT with If-Match ${JSON.stringify(headers['if-match'])}, If-None-Match ${JSON.stringify(headers['if-none-match'])} on ${exists ? 'an existing' : 'a missing'} key answers ${want}`, put)
      if (want === 412) expect(codeOf(put) === 'GW_ERR_PRECONDITION_FAILED', 'with GW_ERR_PRECONDITION_FAILED', put)
      const now = await onMaster(key)
      expect(same(now, want < 300 ? value : exists ? old : null), want < 300 ? 'the write is stored' : 'a refused conditional write changes nothing')
      return
    }
    const headers: Record<string, string> = { ...RW }
    const inm = c.ifNoneMatch === null ? undefined : resolveHeader(c.ifNoneMatch, etag)
    if (inm !== undefined) headers['if-none-match'] = inm
    if (c.syncHeader !== null) headers['x-sync-token'] = c.syncHeader
    const query = c.syncQuery === null ? '' : `syncToken=${encodeURIComponent(c.syncQuery)}`
    const syncOk = (c.syncHeader === null || SYNC_RE.test(ows(c.syncHeader))) && (c.syncQuery === null || SYNC_RE.test(c.syncQuery))
    // RFC 9110 13.1.2: weak comparison, a list of entity tags or "*".
    const matches = inm !== undefined && ows(inm).split(',').some(v => { const e = v.trim().replace(/^W\//, ''); return e === '*' || e === etag })
    const want = !syncOk ? 400 : !exists ? 404 : matches ? 304 : 200
    const get = await api.request('GET', kvPath(key, query), { headers })
    expect(get.status === want, `GET with If-None-Match ${JSON.stringify(inm)}, X-Sync-Token ${JSON.stringify(c.syncHeader)}, ?syncToken=${JSON.stringify(c.syncQuery)} on ${exists ? 'an existing' : 'a missing'} key answers ${want}`, get)
    if (want === 200) expect(get.body.equals(old), 'with the stored bytes', get)
    if (want === 304) expect(get.body.length === 0 && get.headers.etag === etag, '304 has no body and the current ETag', get)
  }
))

// 6. Tokens and scopes.

type AuthChoice = { kind: 'none' } | { kind: 'unknown'; token: string; format: number } | { kind: TokenKind; format: number }
/** Authorization header formats: valid = the token is accepted; 'either' = lenient parsing is acceptable. */
const AUTH_FORMATS: Array<{ make: (tok: string) => string; valid: boolean | 'either' }> = [
  { make: tok => `Bearer ${tok}`, valid: true },
  { make: tok => `bearer ${tok}`, valid: true },
  { make: tok => `BEARER ${tok}`, valid: true },
  { make: tok => `Bearer   ${tok}`, valid: true },
  { make: tok => `Bearer ${tok}  `, valid: true },
  { make: tok => `Bearer\t${tok}`, valid: 'either' },
  { make: tok => `Basic ${tok}`, valid: false },
  { make: tok => `Bearer ${tok} ${tok}`, valid: false },
  { make: tok => tok, valid: false },
  { make: tok => `Bearer ${tok}x`, valid: false },
  { make: tok => `Bearer ${tok.toUpperCase()}`, valid: false },
  { make: tok => `Bearer ${tok.slice(0, -1)}`, valid: false },
  { make: () => 'Bearer', valid: false },
  { make: () => 'Bearer ', valid: false },
  { make: tok => `Bearer,${tok}`, valid: false },
  { make: tok => `Bearer "${tok}"`, valid: false }
]
const authArb: fc.Arbitrary<AuthChoice> = fc.oneof(
  fc.constant({ kind: 'none' as const }),
  fc.record({ kind: fc.constant('unknown' as const), token: fc.stringMatching(/^[A-Za-z0-9._~+/-]{1,40}=*$/), format: fc.constant(0) }),
  fc.record({ kind: fc.constantFrom<TokenKind>('rw', 'ro', 'sc', 'rs'), format: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: fc.nat(AUTH_FORMATS.length - 1) }) })
)
const scopedKeyArb = fc.tuple(fc.constantFrom('inside', 'outside', 'nfd', 'upper', 'short', 'exact', 'embedded'), keyArb(40)).map(([where, suffix]) => {
  switch (where) {
    case 'inside': return PREFIX + suffix
    case 'exact': return PREFIX
    case 'nfd': return PREFIX.normalize('NFD') + suffix // same text, other bytes: outside
    case 'upper': return PREFIX.toUpperCase() + suffix
    case 'short': return PREFIX.slice(0, -1) + suffix
    case 'embedded': return suffix + PREFIX
    default: return suffix
  }
})
type Method = 'GET' | 'HEAD' | 'PUT' | 'DELETE' | 'BATCH-GET' | 'BATCH-PUT' | 'BATCH-DELETE'

function authHeader (a: AuthChoice): { header?: string; valid: boolean | 'either' } {
  if (a.kind === 'none') return { valid: false }
  if (a.kind === 'unknown') return { header: `Bearer ${a.token}`, valid: false }
  const f = AUTH_FORMATS[a.format]!
  return { header: f.make(TOKENS[a.kind]), valid: f.valid }
}

property('token x method x key: status is exactly 401, 403 or the operation\'s own, and a refused write changes nothing', 100, fc.asyncProperty(
  authArb, fc.constantFrom<Method>('GET', 'HEAD', 'PUT', 'DELETE', 'BATCH-GET', 'BATCH-PUT', 'BATCH-DELETE'), scopedKeyArb, fc.option(fc.uint8Array({ maxLength: 16 }), { nil: null }),
  async (auth, method, key, seeded) => {
    const old = seeded === null ? null : Buffer.from(seeded)
    await seed([[key, old]])
    const { header, valid } = authHeader(auth)
    const right = method.endsWith('GET') || method === 'HEAD' ? 'read' : 'write'
    // The operation's own answer when allowed.
    const own = right === 'read' ? (old === null ? 404 : 200) : method.endsWith('PUT') ? (old === null ? 201 : 200) : (old === null ? 404 : 204)
    const rights = auth.kind === 'none' || auth.kind === 'unknown' ? null : RIGHTS[auth.kind]
    const allowed = rights !== null && rights[right] && key.startsWith(rights.prefix)
    const authStatus = rights === null || valid === false ? 401 : allowed ? own : 403
    const acceptable = valid === 'either' ? [401, authStatus] : [authStatus]
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' }
    if (header !== undefined) headers.authorization = header
    const newValue = Buffer.from('written by the fuzzer')
    let status: number
    let r: Reply
    if (method.startsWith('BATCH-')) {
      const op = method === 'BATCH-GET' ? { op: 'get', key } : method === 'BATCH-PUT' ? { op: 'put', key, value: newValue.toString('utf8') } : { op: 'delete', key }
      r = await api.request('POST', '/kv/_batch', { headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ ops: [op] }) })
      if (r.status === 401) status = 401
      else {
        expect(r.status === 200, 'an authenticated batch answers 200', r)
        const res = (r.json as { results?: Array<{ status: number; error?: { code: string } }> } | undefined)?.results?.[0]
        expect(res !== undefined, 'one result', r)
        status = res.status
        if (status === 403) expect(res.error?.code === 'GW_ERR_FORBIDDEN', 'a refused op says GW_ERR_FORBIDDEN', r)
      }
    } else {
      r = await api.request(method, kvPath(key), { headers, ...(method === 'PUT' ? { body: newValue } : {}) })
      status = r.status
      if (status === 403 && method !== 'HEAD') expect(codeOf(r) === 'GW_ERR_FORBIDDEN', '403 says GW_ERR_FORBIDDEN', r)
      if (status === 401 && method !== 'HEAD') expect(codeOf(r) === 'GW_ERR_UNAUTHORIZED', '401 says GW_ERR_UNAUTHORIZED', r)
    }
    expect(acceptable.includes(status), `${auth.kind} token (Authorization ${JSON.stringify(header)}) ${method} ${JSON.stringify(key)} answers ${acceptable.join(' or ')} (got ${status})`, r)
    const now = await onMaster(key)
    if (right === 'write' && status !== 200 && status !== 201 && status !== 204) {
      expect(same(now, old), `a refused ${method} (${status}) changed nothing on the master`)
    } else if (right === 'write') {
      expect(same(now, method.endsWith('PUT') ? newValue : null), `an allowed ${method} took effect`)
    } else {
      expect(same(now, old), 'a read changes nothing')
    }
  }
))

// 7. Batches.

const POOL = ['b:0', 'b:1', 'b:ü 😀/?#%', `${PREFIX}b:3`, 'k'.repeat(MAX_KEY + 1)] // the last one is too long
type Enc = 'utf8' | 'base64'
interface OpSpec { op: 'get' | 'put' | 'delete'; key: number; consistency?: 'eventual' | 'strong'; ttl?: number; value?: Uint8Array | string; big?: boolean }
const validOpArb: fc.Arbitrary<OpSpec> = fc.oneof(
  fc.record({ op: fc.constant('get' as const), key: fc.nat(POOL.length - 1), consistency: fc.constantFrom('eventual' as const, 'strong' as const) }, { requiredKeys: ['op', 'key'] }),
  fc.record({
    op: fc.constant('put' as const),
    key: fc.nat(POOL.length - 1),
    value: fc.oneof(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.uint8Array({ maxLength: 64 })),
    ttl: fc.integer({ min: 60, max: 2147483647 }),
    big: fc.integer({ min: 0, max: 9 }).map(n => n === 0)
  }, { requiredKeys: ['op', 'key', 'value'] }),
  fc.record({ op: fc.constant('delete' as const), key: fc.nat(POOL.length - 1) })
)
/** Ops that break the schema even with ajv's type coercion. */
const INVALID_OPS: unknown[] = [
  { op: 'get' }, { op: 'get', key: '' }, { op: 'frobnicate', key: 'b:0' }, { op: 'put', key: 'b:0' }, { op: 'put', key: 'b:0', value: {} },
  { op: 'put', key: 'b:0', value: 'x', ttl: 0 }, { op: 'put', key: 'b:0', value: 'x', ttl: -3 }, { op: 'put', key: 'b:0', value: 'x', ttl: 1.5 },
  { op: 'put', key: 'b:0', value: 'x', ttl: 2147483648 }, { op: 'put', key: 'b:0', value: 'x', ttl: 'soon' }, { op: 'get', key: 'b:0', consistency: 'weird' },
  { op: 'delete', key: 'b:0', extra: 1 }, { op: 'get', key: {} }, { op: 'get', key: ['a', 'b'] }, null, 'get', 42, [], { OP: 'get', key: 'b:0' },
  { op: 'get', key: 'b:0', value: 'x' }, { op: 'put', key: 'b:0', value: ['a', 'b'] }
]
type BatchCase =
  | { kind: 'valid'; ops: OpSpec[]; encoding?: Enc; durability?: 'replicated' | 'none' }
  | { kind: 'invalid'; body: string; contentType?: string; touches: boolean }
const encodeOp = (o: OpSpec, enc: Enc): Record<string, unknown> => {
  const key = POOL[o.key]!
  if (o.op === 'get') return { op: 'get', key, ...(o.consistency === undefined ? {} : { consistency: o.consistency }) }
  if (o.op === 'delete') return { op: 'delete', key }
  return { op: 'put', key, value: opValue(o, enc), ...(o.ttl === undefined ? {} : { ttl: o.ttl }) }
}
/** The string a put op sends, in the batch's encoding (or a value one byte over the limit). */
function opValue (o: OpSpec, enc: Enc): string {
  if (o.big === true) return enc === 'base64' ? Buffer.alloc(MAX_VALUE + 1, 7).toString('base64') : 'x'.repeat(MAX_VALUE + 1)
  const v = o.value ?? ''
  const buf = typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v)
  return enc === 'base64' ? buf.toString('base64') : typeof v === 'string' ? v : buf.toString('utf8')
}
const batchArb: fc.Arbitrary<BatchCase> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('valid' as const), ops: fc.array(validOpArb, { minLength: 1, maxLength: MAX_OPS }), encoding: fc.constantFrom<Enc>('utf8', 'base64'), durability: fc.constantFrom('replicated' as const, 'none' as const) }, { requiredKeys: ['kind', 'ops'] }) },
  {
    weight: 2,
    arbitrary: fc.oneof(
      // A batch with one invalid op among valid ones (as a whole: 400, nothing runs).
      fc.tuple(fc.array(validOpArb, { maxLength: 3 }), fc.constantFrom(...INVALID_OPS), fc.array(validOpArb, { maxLength: 3 }))
        .map(([a, bad, b]) => ({ kind: 'invalid' as const, body: JSON.stringify({ ops: [...a.map(o => encodeOp(o, 'utf8')), bad, ...b.map(o => encodeOp(o, 'utf8'))] }), touches: true })),
      // Too many ops.
      fc.array(validOpArb, { minLength: MAX_OPS + 1, maxLength: MAX_OPS + 3 }).map(ops => ({ kind: 'invalid' as const, body: JSON.stringify({ ops: ops.map(o => encodeOp(o, 'utf8')) }), touches: true })),
      // Bad top level.
      fc.constantFrom(
        '{}', '{"ops":[]}', '{"ops":{}}', '{"ops":"get"}', '{"ops":null}', '[]', '"ops"', 'null', '42', 'true', '', ' ', '{', '{"ops":[{"op":"get","key":"b:0"}]',
        '{"ops":[{"op":"get","key":"b:0"}],"encoding":"hex"}', '{"ops":[{"op":"get","key":"b:0"}],"durability":"maybe"}',
        '{"ops":[{"op":"get","key":"b:0"}],"extra":true}', '{"__proto__":{"ops":[]},"ops":[{"op":"get","key":"b:0"}]}',
        '{"ops":[{"op":"get","key":"b:0","__proto__":{"x":1}}]}', '{"constructor":{"prototype":{"polluted":1}},"ops":[{"op":"get","key":"b:0"}]}',
        '{"ops":[{"op":"put","key":"b:0","value":"x"}],"ops":[]}', '\u0000', '\uFEFF{"ops":[{"op":"get","key":"b:0"}]}'
      ).map(body => ({ kind: 'invalid' as const, body, touches: body.includes('"put"') })),
      // Not JSON: wrong or missing content type, or random text.
      fc.tuple(fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'application/xml', 'multipart/form-data; boundary=x', 'application/octet-stream', ''), fc.constantFrom('{"ops":[{"op":"put","key":"b:0","value":"x"}]}', 'ops=1'))
        .map(([contentType, body]) => ({ kind: 'invalid' as const, body, contentType, touches: true })),
      fc.string({ unit: 'grapheme', maxLength: 40 }).filter(s => { try { JSON.parse(s); return false } catch { return true } }).map(body => ({ kind: 'invalid' as const, body, touches: false })),
      fc.jsonValue({ maxDepth: 3 }).map(v => ({ kind: 'invalid' as const, body: JSON.stringify({ ops: [v] }), touches: false }))
    )
  }
)

property('random batch bodies: never 5xx; a valid batch answers one result per op, each exactly what the model says', 80, fc.asyncProperty(
  batchArb, fc.constantFrom<TokenKind | 'none'>('rw', 'rw', 'ro', 'sc', 'none'),
  async (b, tokenKind) => {
    await seed(POOL.filter(k => bytes(k) <= MAX_KEY).map(k => [k, null]))
    const headers: Record<string, string> = tokenKind === 'none' ? {} : { authorization: `Bearer ${TOKENS[tokenKind]}` }
    if (b.kind === 'invalid') {
      if (b.contentType !== '') headers['content-type'] = b.contentType ?? 'application/json'
      const r = await api.request('POST', '/kv/_batch', { headers, body: b.body })
      if (tokenKind === 'none') {
        expect(r.status === 401, 'no token: 401 before anything else', r)
      } else {
        // A jsonValue that happens to form a valid op is a valid batch: judge it by the model below only if 200.
        expect(r.status === 400 || r.status === 415 || (r.status === 200 && !b.touches), `an invalid batch answers 400 or 415`, r)
      }
      if (b.touches) {
        for (const k of POOL) expect(await onMaster(k) === null, `an invalid batch wrote nothing (${JSON.stringify(k)})`)
      }
      return
    }
    const enc = b.encoding ?? 'utf8'
    const body = { ops: b.ops.map(o => encodeOp(o, enc)), ...(b.encoding === undefined ? {} : { encoding: b.encoding }), ...(b.durability === undefined ? {} : { durability: b.durability }) }
    const r = await api.request('POST', '/kv/_batch', { headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    if (tokenKind === 'none') {
      expect(r.status === 401, 'no token: 401', r)
      for (const k of POOL) expect(await onMaster(k) === null, 'an unauthenticated batch wrote nothing')
      return
    }
    expect(r.status === 200, 'a valid batch answers 200', r)
    const json = r.json as { results?: Array<Record<string, unknown>> } | undefined
    expect(json !== undefined && Object.keys(json).join() === 'results' && Array.isArray(json.results), 'the body is exactly {results:[...]}', r)
    const results = json.results!
    expect(results.length === b.ops.length, `one result per op (${b.ops.length} ops, ${results.length} results)`, r)
    // The model: what each op must answer, run in order.
    const model = new Map<string, Buffer>()
    // durability=none: an eventual get after a write of the same key may still see the replica's older state.
    const unsettled = new Set<string>()
    const rights = RIGHTS[tokenKind]
    for (const [i, o] of b.ops.entries()) {
      const key = POOL[o.key]!
      const res = results[i]!
      const where = `op ${i} ${JSON.stringify(encodeOp(o, enc)).slice(0, 160)}`
      const err = res.error as { code?: unknown; message?: unknown } | undefined
      if (err !== undefined) {
        expect(typeof err.code === 'string' && /^GW_ERR_/.test(err.code) && (ERROR_CODES as Record<string, number>)[err.code] === res.status, `${where}: error code matches its status`, r)
        expect(typeof err.message === 'string' && !err.message.includes(STACK_MARKER) && !err.message.includes(ADDRESS_MARKER), `${where}: a clean message`, r)
      }
      const right = o.op === 'get' ? 'read' : 'write'
      let want: number
      let wantCode: string | undefined
      if (bytes(key) > MAX_KEY) { want = 400; wantCode = 'GW_ERR_KEY_INVALID' } else if (!rights[right] || !key.startsWith(rights.prefix)) { want = 403; wantCode = 'GW_ERR_FORBIDDEN' } else if (o.op === 'get') {
        want = model.has(key) ? 200 : 404
      } else if (o.op === 'delete') {
        want = model.has(key) ? 204 : 404
        model.delete(key)
      } else {
        const value = Buffer.from(opValue(o, enc), enc)
        if (value.length > MAX_VALUE) { want = 413; wantCode = 'GW_ERR_VALUE_TOO_LARGE' } else {
          want = model.has(key) ? 200 : 201
          model.set(key, value)
          if (b.durability === 'none') unsettled.add(key)
        }
      }
      if (want === 404) wantCode = 'GW_ERR_KEY_NOT_FOUND'
      expect(res.status === want, `${where} with token ${tokenKind}: status ${want} (got ${String(res.status)})`, r)
      if (wantCode !== undefined) expect(err?.code === wantCode, `${where}: code ${wantCode}`, r)
      if (o.op === 'get' && want === 200) {
        const stored = model.get(key)!
        expect(res.value === stored.toString(enc) && res.etag === etagOf(stored), `${where}: the value and ETag of the earlier put`, r)
      }
    }
    for (const k of POOL) {
      expect(same(await onMaster(k), model.get(k) ?? null), `after the batch the master holds what the model says for ${JSON.stringify(k)}`)
    }
  }
))

// 8. Batch keys and values that are not well-formed Unicode (JSON can carry lone surrogates; UTF-8 cannot).

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map(c => String.fromCharCode(c))
const illFormedArb = fc.record({ before: fc.string({ maxLength: 6 }), lone: loneSurrogate, after: fc.string({ maxLength: 6 }) }).map(p => `${p.before}${p.lone}${p.after}`)

property('a batch key that is not well-formed UTF-16 is refused like on /kv/:key (400 GW_ERR_KEY_INVALID), never stored under another key', 40, fc.asyncProperty(
  illFormedArb,
  async (key) => {
    const alias = Buffer.from(key, 'utf8') // what the key becomes when encoded: U+FFFD for the lone surrogate
    await master.del(alias)
    const r = await api.request('POST', '/kv/_batch', { headers: { ...RW, 'content-type': 'application/json' }, body: JSON.stringify({ ops: [{ op: 'put', key, value: 'v' }] }) })
    const res = (r.json as { results?: Array<{ status: number; error?: { code: string } }> } | undefined)?.results?.[0]
    const stored = await master.getBuffer(alias)
    expect(stored === null, `the key ${JSON.stringify(key)} was stored on the master as ${JSON.stringify(alias.toString('utf8'))} (bytes ${alias.toString('hex')}), where the single-key route answers 400 for the same key`, r)
    expect(r.status === 400 || (res?.status === 400 && res.error?.code === 'GW_ERR_KEY_INVALID'), 'the batch (or the op) answers 400 GW_ERR_KEY_INVALID', r)
  }
))

property('a batch utf8 value that is not well-formed UTF-16 is refused, not acknowledged and stored as other bytes', 40, fc.asyncProperty(
  illFormedArb,
  async (value) => {
    const key = fresh('lone:')
    const r = await api.request('POST', '/kv/_batch', { headers: { ...RW, 'content-type': 'application/json' }, body: JSON.stringify({ ops: [{ op: 'put', key, value }] }) })
    const res = (r.json as { results?: Array<{ status: number }> } | undefined)?.results?.[0]
    const stored = await onMaster(key)
    expect(r.status === 400 || res?.status === 400, `a put of ${JSON.stringify(value)} answers 400 (got ${res?.status ?? r.status}; the master now holds ${stored === null ? 'nothing' : stored.toString('hex')}, not the value sent)`, r)
    expect(stored === null, 'nothing stored')
  }
))

// 9. Any method on any path: never 5xx, always the error shape.

const PATHS = ['/', '/kv', '/kv/', '/kv//', '/kv/a/b', '/kv/a/', '//kv/a', '/KV/a', '/kv/_batch', '/kv/_batch/x', '/nope', '/kv/%', '/kv/%ZZ', '/kv/%C3',
  '/kv/%ED%A0%80', '/kv/%F4%90%80%80', '/kv/%C0%AF', '/kv/%FF', '/kv/a?%', '/kv/a?ttl', '/kv/a?consistency=strong&consistency=eventual', '/kv/a?consistency[]=strong',
  '/kv/a?syncToken=1&syncToken=2', '/kv/a?__proto__=1', '/kv/a?constructor=1', '/metrics', '/healthz', '/readyz', '/docs/nope', '/docs/static/nope.js', '/openapi.json', '/kv/a;b',
  '/kv/a%3Bb', '/kv/%2e%2e', '/kv/..%2F..%2Ftopology', '/kv/a?' + 'x'.repeat(3000)]
const INVALID_ENCODING = new Set(['/kv/%', '/kv/%ZZ', '/kv/%C3', '/kv/%ED%A0%80', '/kv/%F4%90%80%80', '/kv/%C0%AF', '/kv/%FF'])

property('any method on any path answers without 5xx, errors in the gateway shape; bad percent-encoding is 400 GW_ERR_KEY_INVALID', 60, fc.asyncProperty(
  fc.constantFrom('GET', 'HEAD', 'PUT', 'DELETE', 'POST', 'PATCH', 'OPTIONS', 'PROPFIND', 'PURGE', 'SEARCH'),
  fc.oneof(fc.constantFrom(...PATHS), fc.array(fc.oneof(keyPiece.map(encodeURIComponent), fc.constantFrom('', '..', '.', 'kv', '_batch')), { minLength: 1, maxLength: 4 }).map(a => `/${a.join('/')}`)),
  fc.boolean(),
  async (method, path, withToken) => {
    const headers: Record<string, string> = withToken ? { ...RW, 'content-type': 'application/json' } : { 'content-type': 'application/json' }
    const r = await api.request(method, path, { headers, ...(method === 'PUT' || method === 'POST' || method === 'PATCH' ? { body: '{}' } : {}) })
    if (INVALID_ENCODING.has(path) && withToken && ['GET', 'PUT', 'DELETE'].includes(method)) {
      expect(r.status === 400 && codeOf(r) === 'GW_ERR_KEY_INVALID', `${method} ${path} answers 400 GW_ERR_KEY_INVALID`, r)
    }
  }
))

// 10. Malformed HTTP (what node:http refuses to send, a raw socket can): still the gateway's error shape.

type RawCase =
  | { kind: 'method'; method: string }
  | { kind: 'header-value'; header: string; ctl: number }
  | { kind: 'header-name'; name: string }
  | { kind: 'target'; target: string }
  | { kind: 'content-length'; value: string }
  | { kind: 'te-and-cl' }
  | { kind: 'te'; value: string }
  | { kind: 'big-header'; size: number }
  | { kind: 'version'; version: string }
  | { kind: 'no-host' }
const rawCaseArb: fc.Arbitrary<RawCase> = fc.oneof(
  fc.record({ kind: fc.constant('method' as const), method: fc.oneof(fc.stringMatching(/^[A-Z]{1,12}$/), fc.constantFrom('get', 'G(T', 'GET\t', 'PROPFIND', 'BREW')) }),
  fc.record({ kind: fc.constant('header-value' as const), header: fc.constantFrom('If-None-Match', 'Authorization', 'X-Sync-Token', 'X-Anything'), ctl: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 11, max: 12 }), fc.integer({ min: 14, max: 31 }), fc.constant(127)) }),
  fc.record({ kind: fc.constant('header-name' as const), name: fc.constantFrom('Bad Name', 'X(Y)', 'X{Y}', '\u00e9', 'X@Y', 'X"Y', 'X/Y', 'X[Y]', 'X=Y') }),
  fc.record({ kind: fc.constant('target' as const), target: fc.constantFrom('/kv/a b', '/kv/\u00c3\u00a9', '/kv/a\u0000', '/kv/a\u007f', '/kv/a\u0001b') }),
  fc.record({ kind: fc.constant('content-length' as const), value: fc.constantFrom('abc', '-1', '1, 2', '1 2', '0x1', '+1', '1.0', '') }),
  fc.constant({ kind: 'te-and-cl' as const }),
  fc.record({ kind: fc.constant('te' as const), value: fc.constantFrom('gzip', 'chunked, gzip', 'chunk', 'chunked;x=1, identity') }),
  fc.record({ kind: fc.constant('big-header' as const), size: fc.integer({ min: 17_000, max: 40_000 }) }),
  fc.record({ kind: fc.constant('version' as const), version: fc.constantFrom('HTTP/2.0', 'HTTP/3.0', 'HTTP/1', 'HTTPS/1.1', 'http/1.1', 'HTTP/1.1x') }),
  fc.constant({ kind: 'no-host' as const })
)
function rawRequest (c: RawCase): Buffer {
  let method = 'GET'
  let target = kvPath('raw:key')
  let version = 'HTTP/1.1'
  let body = ''
  const headers: Array<[string, string]> = [['Host', 'gateway.test'], ['Authorization', `Bearer ${TOKENS.rw}`], ['Connection', 'close']]
  switch (c.kind) {
    case 'method': method = c.method; break
    case 'header-value': {
      const v = `a${String.fromCharCode(c.ctl)}b`
      const i = headers.findIndex(([k]) => k === c.header)
      if (i >= 0) headers[i] = [c.header, `Bearer ${TOKENS.rw}${v}`]
      else headers.push([c.header, v])
      break
    }
    case 'header-name': headers.push([c.name, '1']); break
    case 'target': target = c.target; break
    case 'content-length': method = 'PUT'; body = 'v'; headers.push(['Content-Length', c.value]); break
    case 'te-and-cl': method = 'PUT'; body = '1\r\nv\r\n0\r\n\r\n'; headers.push(['Transfer-Encoding', 'chunked'], ['Content-Length', '3']); break
    case 'te': method = 'PUT'; body = '1\r\nv\r\n0\r\n\r\n'; headers.push(['Transfer-Encoding', c.value]); break
    case 'big-header': headers.push(['X-Big', 'a'.repeat(c.size)]); break
    case 'version': version = c.version; break
    case 'no-host': headers.shift(); break
  }
  return Buffer.from(`${method} ${target} ${version}\r\n${headers.map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${body}`, 'latin1')
}

property('malformed HTTP requests (bad method, header bytes, target, framing, version) get a 4xx in the gateway error shape', 40, fc.asyncProperty(
  rawCaseArb,
  async (c) => {
    const r = await rawExchange(gw.url, rawRequest(c))
    // No request was formed for most of these: X-Request-Id is not asked for.
    const bad = invariantViolations(r, { requestId: false })
    if (r.status === 0) bad.push('no status line')
    expect(bad.length === 0, bad.join('; '), r)
  }
))

t.test('summary', async t => {
  if (refusedTypes.size > 0) t.comment(`malformed Content-Types refused: ${[...refusedTypes].slice(0, 12).join(', ')}`)
  t.ok(api.count > 300, `${api.count} requests checked against the invariants in ${Date.now() - started} ms`)
})
