/**
 * Bearer-token authentication and authorization, end to end against one real Sentinel topology:
 * 401 (with the Bearer challenge) for a missing/unknown token, 403 for a read-only token writing
 * and for a prefix-scoped token outside its prefix (single-key routes and each batch operation),
 * /topology and /metrics only with the ops right `o` (finding 15: they answered any token; an
 * open gateway keeps them open),
 * data unchanged on the master after every refusal, the open routes, the open (tokenless) mode and
 * its one warning line, bad token configuration stopping the process with one line that never
 * shows the token, and no token ever written to the log.
 * Token sets: AUTH_TOKENS and the same set through AUTH_TOKENS_FILE.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { runServer, startInProcess, startProcess } from './helpers/gateway.js'
import { assertError, KvClient, kvPath, type Answer } from './helpers/kv-client.js'
import { topologyFor } from './helpers/topology.js'

/** Load shedding off: on a loaded CI machine a CPU-starved test process would answer 503 (overloaded), which is not what this file tests. */
const NO_SHEDDING = { EVENT_LOOP_MAX_DELAY_MS: '0' }
/** A gateway process starts in about 1.5 s; allow for a heavily loaded machine. */
const READY_MS = 40_000
const topo = await topologyFor(t)
/** Unique per run (keys and tokens), so nothing collides with another file or an earlier run. */
const RUN = `${process.pid}-${Date.now()}`
const P = `auth:${RUN}:`
const TOKENS = {
  rw: `rw-${randomBytes(12).toString('hex')}`,
  ro: `ro-${randomBytes(12).toString('hex')}`,
  session: `se-${randomBytes(12).toString('hex')}`,
  ops: `op-${randomBytes(12).toString('hex')}`
}
const SESSION = 'session:'

const tmp = mkdtempSync(path.join(os.tmpdir(), 'skv-auth-'))
t.teardown(() => rmSync(tmp, { recursive: true, force: true }))
const tokensFile = path.join(tmp, 'tokens.json')
writeFileSync(tokensFile, JSON.stringify([
  { name: 'admin', token: TOKENS.rw, rights: ['read', 'write'] },
  { name: 'reader', token: TOKENS.ro, rights: ['read'] },
  { name: 'web', token: TOKENS.session, rights: ['read', 'write'], prefix: SESSION },
  { name: 'ops', token: TOKENS.ops, rights: ['ops'] }
]))

/** The bytes the master holds under `key` (null when absent). */
async function onMaster (key: string): Promise<Buffer | null> {
  const c = topo.client((await topo.masterProc()).port)
  try { return await c.getBuffer(key) } finally { await c.quit() }
}
async function setOnMaster (key: string, value: string): Promise<void> {
  const c = topo.client((await topo.masterProc()).port)
  try { await c.set(key, value) } finally { await c.quit() }
}

/** A KvClient whose every request carries `Authorization: <auth>` (none when undefined). */
class AuthClient extends KvClient {
  constructor (base: string, readonly auth: string | undefined) { super(base) }
  override async request (method: string, p: string, opts: Parameters<KvClient['request']>[2] = {}): Promise<Answer> {
    const headers = { ...(opts.headers ?? {}), ...(this.auth === undefined ? {} : { authorization: this.auth }) }
    return await super.request(method, p, { ...opts, headers })
  }

  async batch (ops: unknown[], encoding?: string): Promise<Answer> {
    return await this.request('POST', '/kv/_batch', {
      body: JSON.stringify({ ops, ...(encoding === undefined ? {} : { encoding }) }),
      headers: { 'content-type': 'application/json' }
    })
  }
}

interface BatchResults { results: Array<{ status: number; value?: string; error?: { code: string; message: string } }> }
const statuses = (r: Answer): number[] => (r.json as BatchResults).results.map(x => x.status)
const codes = (r: Answer): Array<string | undefined> => (r.json as BatchResults).results.map(x => x.error?.code)

function assert401 (t: Test, r: Answer, what: string): void {
  assertError(t, r, 401, 'GW_ERR_UNAUTHORIZED', what)
  t.match(r.headers.get('www-authenticate') ?? '', /^Bearer(\s|$)/, `${what}: WWW-Authenticate: Bearer challenge`)
}

const variants: Array<[string, Record<string, string>]> = [
  ['AUTH_TOKENS', { AUTH_TOKENS: `${TOKENS.rw}:rw,${TOKENS.ro}:r,${TOKENS.session}:rw:${SESSION},${TOKENS.ops}:o` }],
  ['AUTH_TOKENS_FILE', { AUTH_TOKENS_FILE: tokensFile }]
]
/** These tests answer about 30 401s per gateway on purpose: the 401 limit has its own test (test/security/edge-abuse.test.ts). */
const NO_401_LIMIT = { AUTH_FAILURES_MAX: '0' }

for (const [variant, env] of variants) {
  t.test(`tokens from ${variant}`, async t => {
    const gw = await startInProcess(t, topo, { ...NO_SHEDDING, ...NO_401_LIMIT, ...env })
    const anon = new AuthClient(gw.url, undefined)
    const rw = new AuthClient(gw.url, `Bearer ${TOKENS.rw}`)
    const ro = new AuthClient(gw.url, `Bearer ${TOKENS.ro}`)
    const sess = new AuthClient(gw.url, `Bearer ${TOKENS.session}`)
    const ops = new AuthClient(gw.url, `Bearer ${TOKENS.ops}`)
    const V = `${P}${variant}:`
    const plain = `${V}plain` // outside the session prefix
    const inSession = `${SESSION}${V}in`
    t.equal((await rw.put(plain, 'original')).status, 201, 'the rw token creates a key')
    t.equal((await rw.put(inSession, 'session original')).status, 201, 'the rw token creates a key in session:')

    t.test('missing or unknown token: 401 with the Bearer challenge, nothing changed', async t => {
      assert401(t, await anon.get(plain), 'GET without a token')
      assert401(t, await anon.put(plain, 'anon'), 'PUT without a token')
      assert401(t, await anon.del(plain), 'DELETE without a token')
      assert401(t, await anon.batch([{ op: 'put', key: plain, value: 'anon' }]), 'batch without a token')
      assert401(t, await anon.request('GET', '/topology'), '/topology without a token')
      assert401(t, await anon.request('GET', '/metrics'), '/metrics without a token')
      const bad: Array<[string, string]> = [
        ['an unknown token', `Bearer unknown-${randomBytes(8).toString('hex')}`],
        ['a known token plus one character', `Bearer ${TOKENS.rw}x`],
        ['a prefix of a known token', `Bearer ${TOKENS.rw.slice(0, -1)}`],
        ['the token without the Bearer scheme', TOKENS.rw],
        ['Basic credentials', `Basic ${Buffer.from(`user:${TOKENS.rw}`).toString('base64')}`],
        ['Bearer with no token', 'Bearer '],
        ['two tokens', `Bearer ${TOKENS.ro} ${TOKENS.rw}`]
      ]
      for (const [what, auth] of bad) {
        const c = new AuthClient(gw.url, auth)
        assert401(t, await c.get(plain), `GET with ${what}`)
        assert401(t, await c.put(plain, 'x'), `PUT with ${what}`)
        assert401(t, await c.del(plain), `DELETE with ${what}`)
        t.notOk(c.seen.some(s => s.text.includes(TOKENS.rw) || s.text.includes(TOKENS.ro)), `no answer to ${what} echoes a token`)
      }
      t.equal((await onMaster(plain))?.toString(), 'original', 'the value on the master is unchanged')
    })

    t.test('read-only token: reads, but every write is 403 and changes nothing', async t => {
      const got = await ro.get(plain)
      t.equal(got.status, 200, 'GET with the read-only token')
      t.equal(got.text, 'original')
      t.equal((await ro.get(plain, 'consistency=strong')).status, 200, 'strong GET with the read-only token')
      t.equal((await ro.request('HEAD', kvPath(plain))).status, 200, 'HEAD with the read-only token')
      assertError(t, await ro.put(plain, 'changed'), 403, 'GW_ERR_FORBIDDEN', 'PUT replace with the read-only token')
      assertError(t, await ro.put(plain, 'changed', { headers: { 'if-match': '*' } }), 403, 'GW_ERR_FORBIDDEN', 'PUT If-Match: * with the read-only token')
      assertError(t, await ro.put(`${V}ro-new`, 'new'), 403, 'GW_ERR_FORBIDDEN', 'PUT create with the read-only token')
      assertError(t, await ro.del(plain), 403, 'GW_ERR_FORBIDDEN', 'DELETE with the read-only token')
      const b = await ro.batch([
        { op: 'put', key: plain, value: 'batch changed' },
        { op: 'delete', key: plain },
        { op: 'put', key: `${V}ro-batch-new`, value: 'new' },
        { op: 'get', key: plain }
      ])
      t.equal(b.status, 200, 'the batch itself is answered')
      t.same(statuses(b), [403, 403, 403, 200], 'batch: put, delete, put are 403, the get is 200')
      t.same(codes(b), ['GW_ERR_FORBIDDEN', 'GW_ERR_FORBIDDEN', 'GW_ERR_FORBIDDEN', undefined], 'batch: GW_ERR_FORBIDDEN per refused op')
      t.equal((b.json as BatchResults).results[3]?.value, 'original', 'the batch get reads the unchanged value')
      t.equal((await onMaster(plain))?.toString(), 'original', 'the value on the master is unchanged')
      t.equal(await onMaster(`${V}ro-new`), null, 'no key was created by the PUT')
      t.equal(await onMaster(`${V}ro-batch-new`), null, 'no key was created by the batch')
    })

    t.test(`token scoped to "${SESSION}": its keys only`, async t => {
      const k = `${SESSION}${V}scoped`
      t.equal((await sess.put(k, 'one')).status, 201, 'PUT in the prefix creates')
      t.equal((await sess.put(k, 'two')).status, 200, 'PUT in the prefix replaces')
      const g = await sess.get(k)
      t.equal(g.status, 200, 'GET in the prefix')
      t.equal(g.text, 'two')
      t.equal((await sess.del(k)).status, 204, 'DELETE in the prefix')
      t.equal(await onMaster(k), null, 'deleted on the master')
      t.equal((await sess.get(inSession)).text, 'session original', 'reads a session: key written by another token')
      t.equal((await sess.request('GET', `/kv/${encodeURIComponent(SESSION)}${encodeURIComponent(V)}in`)).status, 200, 'the prefix matches after URL decoding')

      const outside = [plain, 'session', `Session:${V}x`, `SESSION:${V}x`, `x${SESSION}${V}x`, ` ${SESSION}${V}x`]
      for (const key of outside) {
        assertError(t, await sess.get(key), 403, 'GW_ERR_FORBIDDEN', `GET ${JSON.stringify(key)}`)
        assertError(t, await sess.put(key, 'scoped write'), 403, 'GW_ERR_FORBIDDEN', `PUT ${JSON.stringify(key)}`)
        assertError(t, await sess.del(key), 403, 'GW_ERR_FORBIDDEN', `DELETE ${JSON.stringify(key)}`)
      }
      const outsideGet = await sess.get(plain)
      t.notOk(outsideGet.text.includes('original'), 'a refused GET does not show the value')
      t.equal((await onMaster(plain))?.toString(), 'original', 'the key outside the prefix is unchanged on the master')
      t.equal(await onMaster(`Session:${V}x`), null, 'no key outside the prefix was created')

      const bk = `${SESSION}${V}batch`
      const b = await sess.batch([
        { op: 'put', key: bk, value: 'in' },
        { op: 'put', key: plain, value: 'out' },
        { op: 'get', key: bk },
        { op: 'get', key: plain },
        { op: 'delete', key: plain },
        { op: 'put', key: `${V}scoped-batch-new`, value: 'out' },
        { op: 'delete', key: bk }
      ])
      t.equal(b.status, 200, 'the batch itself is answered')
      t.same(statuses(b), [201, 403, 200, 403, 403, 403, 204], 'batch: each operation judged on its own key')
      t.same(codes(b), [undefined, 'GW_ERR_FORBIDDEN', undefined, 'GW_ERR_FORBIDDEN', 'GW_ERR_FORBIDDEN', 'GW_ERR_FORBIDDEN', undefined])
      const results = (b.json as BatchResults).results
      t.equal(results[2]?.value, 'in', 'the allowed get reads the allowed put')
      t.equal(results[3]?.value, undefined, 'the refused get carries no value')
      t.equal((await onMaster(plain))?.toString(), 'original', 'the key outside the prefix is still unchanged')
      t.equal(await onMaster(`${V}scoped-batch-new`), null, 'the refused batch put created nothing')
      t.equal(await onMaster(bk), null, 'the allowed batch delete ran')
    })

    t.test('the rw token may do everything', async t => {
      const k = `${V}rw`
      t.equal((await rw.put(k, 'a')).status, 201)
      t.equal((await rw.get(k)).text, 'a')
      const b = await rw.batch([{ op: 'put', key: k, value: 'b' }, { op: 'get', key: k, consistency: 'strong' }, { op: 'delete', key: k }])
      t.same(statuses(b), [200, 200, 204])
      t.equal((await rw.del(inSession)).status, 204, 'also keys in session:')
      t.equal((await rw.get(inSession)).status, 404)
    })

    t.test('open routes need no token; /topology needs one', async t => {
      for (const p of ['/healthz', '/readyz', '/openapi.yaml', '/openapi.json']) {
        const r = await anon.request('GET', p)
        t.equal(r.status, 200, `${p} without a token`)
      }
      t.match((await anon.request('GET', '/openapi.yaml')).text, /\/kv\/\{key\}/, 'openapi.yaml describes /kv/{key}')
      const docs = await anon.request('GET', '/docs')
      t.equal(docs.status, 200, '/docs without a token (after redirects)')
      t.match(docs.headers.get('content-type') ?? '', /text\/html/, '/docs is an HTML page')
      t.equal((await anon.request('GET', '/docs/json')).status, 200, '/docs/json (the document swagger-ui loads) without a token')
      assert401(t, await anon.request('GET', '/topology'), '/topology without a token')
    })

    t.test('/topology and /metrics need the ops right (o); the ops token has nothing else', async t => {
      for (const [who, c] of [['read-only', ro], ['read-write', rw], [`scoped to ${SESSION}`, sess]] as const) {
        for (const p of ['/topology', '/metrics']) {
          const r = await c.request('GET', p)
          assertError(t, r, 403, 'GW_ERR_FORBIDDEN', `${p} with the ${who} token`)
          t.notOk(r.text.includes(`${topo.redis[0]!.port}`), `${p} with the ${who} token: no node address in the answer`)
        }
      }
      const view = await ops.request('GET', '/topology')
      t.equal(view.status, 200, '/topology with the ops token')
      t.equal((view.json as { masterName?: string }).masterName, topo.masterName, 'the topology view')
      const metrics = await ops.request('GET', '/metrics')
      t.equal(metrics.status, 200, '/metrics with the ops token')
      t.match(metrics.text, /^skv_http_requests_total\{/m, 'the Prometheus text')
      assertError(t, await ops.get(plain), 403, 'GW_ERR_FORBIDDEN', 'the ops token cannot read')
      assertError(t, await ops.put(plain, 'ops'), 403, 'GW_ERR_FORBIDDEN', 'the ops token cannot write')
      t.equal((await onMaster(plain))?.toString(), 'original', 'the value on the master is unchanged')
    })
  })
}

t.test('no token configured: everything open, one warning line', async t => {
  const gw = await startProcess(t, topo, { ...NO_SHEDDING, LOG_LEVEL: 'warn' }, READY_MS)
  const api = new KvClient(gw.url)
  const k = `${P}open`
  t.equal((await api.put(k, 'open')).status, 201, 'PUT without a token')
  t.equal((await api.get(k)).text, 'open', 'GET without a token')
  t.equal((await api.request('GET', '/topology')).status, 200, '/topology without a token')
  t.equal((await api.request('GET', '/metrics')).status, 200, '/metrics without a token')
  t.equal((await api.del(k)).status, 204, 'DELETE without a token')
  const lines = gw.output().split('\n').filter(l => l.trim() !== '')
  const about = lines.filter(l => /AUTH_TOKENS|open to anyone/i.test(l))
  t.equal(about.length, 1, `exactly one line says the gateway is open (log: ${JSON.stringify(lines)})`)
  const parsed = JSON.parse(about[0] ?? '{}') as { level?: number; msg?: string }
  t.equal(parsed.level, 40, 'it is a warning (pino level 40)')
  t.match(parsed.msg ?? '', /AUTH_TOKENS/, 'it names AUTH_TOKENS')
  t.equal(lines.filter(l => /"level":40/.test(l)).length, 1, 'and it is the only warning')
})

t.test('bad token configuration: exit non-zero with one line naming the variable, never the token', async t => {
  const good = `good-${randomBytes(8).toString('hex')}`
  const secret = `s3cr3t-${randomBytes(8).toString('hex')}`
  const badFile = path.join(tmp, 'bad.json')
  writeFileSync(badFile, JSON.stringify([{ token: secret, rights: ['read', 'delete'] }]))
  const cases: Array<{ what: string; env: Record<string, string>; secrets: string[]; variable: RegExp }> = [
    { what: 'a 5-character token', env: { AUTH_TOKENS: 'sh0rt:rw' }, secrets: ['sh0rt'], variable: /\bAUTH_TOKENS\b/ },
    { what: 'rights q', env: { AUTH_TOKENS: `${secret}:rwq` }, secrets: [secret], variable: /\bAUTH_TOKENS\b/ },
    { what: 'a bad second entry after a good one', env: { AUTH_TOKENS: `${good}:rw,${secret}:q` }, secrets: [good, secret], variable: /\bAUTH_TOKENS\b/ },
    { what: 'a bad right in AUTH_TOKENS_FILE', env: { AUTH_TOKENS_FILE: badFile }, secrets: [secret], variable: /\bAUTH_TOKENS_FILE\b/ }
  ]
  // Two at a time: each is a full Node start (about 1.5 s, more on a loaded machine).
  const queue = [...cases]
  await Promise.all([0, 1].map(async () => {
    for (let c = queue.shift(); c !== undefined; c = queue.shift()) await check(c)
  }))
  async function check (c: typeof cases[number]): Promise<void> {
    // Unreachable sentinels: the token list must be rejected before anything connects.
    const r = await runServer({ REDIS_SENTINELS: '127.0.0.1:1', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...c.env }, 30_000)
    t.not(r.code, 0, `${c.what}: exits non-zero`)
    t.not(r.code, null, `${c.what}: exits by itself (not killed after 30 s)`)
    const lines = r.stderr.split('\n').filter(l => l !== '')
    t.equal(lines.length, 1, `${c.what}: exactly one line on stderr (got ${JSON.stringify(r.stderr)})`)
    t.equal(r.stdout, '', `${c.what}: nothing on stdout`)
    t.match(lines[0] ?? '', c.variable, `${c.what}: the line names the variable`)
    for (const s of c.secrets) t.notOk((r.stderr + r.stdout).includes(s), `${c.what}: the token is not shown`)
  }
})

t.test('tokens never reach the log, even at debug level', async t => {
  const gw = await startProcess(t, topo, { ...NO_SHEDDING, LOG_LEVEL: 'debug', AUTH_TOKENS: `${TOKENS.rw}:rw,${TOKENS.ro}:r` }, READY_MS)
  const unknown = `unknown-${randomBytes(8).toString('hex')}`
  for (const auth of [`Bearer ${TOKENS.rw}`, `Bearer ${TOKENS.ro}`, `Bearer ${unknown}`]) {
    const c = new AuthClient(gw.url, auth)
    await c.put(`${P}log`, 'v')
    await c.get(`${P}log`)
    await c.batch([{ op: 'get', key: `${P}log` }])
  }
  await gw.stop()
  const out = gw.output()
  t.ok(out.length > 0, 'the gateway logged something')
  for (const s of [TOKENS.rw, TOKENS.ro, unknown]) t.notOk(out.includes(s), 'no token in the log')
  t.notOk(/authorization/i.test(out), 'no Authorization header in the log')
})
