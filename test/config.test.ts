/**
 * Configuration: the compiled server refuses a bad environment with one stderr line naming the
 * variable (and never a secret); loadConfig's defaults, warnings and host:port parsing.
 */
import { getHeapStatistics } from 'node:v8'
import t from 'tap'
import { ConfigError, loadConfig, parseHostPorts, VARIABLES } from '../src/config.js'
import { runServer } from './helpers/gateway.js'

const SECRET = 'pw-Zq7-never-print-me'
const SENTINEL_SECRET = 'spw-Kx3-never-print-me'
/** A syntactically valid sentinel list; nothing listens there (the config is refused before any connection). */
const SENTINELS = '127.0.0.1:1,127.0.0.1:2,127.0.0.1:3'
const base = { REDIS_SENTINELS: SENTINELS, REDIS_PASSWORD: SECRET, REDIS_SENTINEL_PASSWORD: SENTINEL_SECRET, LOG_LEVEL: 'info' }

/** Runs `items` through `fn`, at most `limit` at a time (each server start costs ~1 s of CPU under tap, which instruments child processes). */
async function limited<I, O> (items: I[], limit: number, fn: (item: I) => Promise<O>): Promise<O[]> {
  const out: O[] = new Array(items.length)
  let next = 0
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i]!)
    }
  }))
  return out
}

const cases: Array<{ name: string; env: Record<string, string>; variable: string }> = [
  { name: 'PORT=abc', env: { ...base, PORT: 'abc' }, variable: 'PORT' },
  { name: 'REDIS_READ_STRATEGY=fastest', env: { ...base, REDIS_READ_STRATEGY: 'fastest' }, variable: 'REDIS_READ_STRATEGY' },
  { name: 'REDIS_SENTINELS missing', env: { REDIS_PASSWORD: SECRET, REDIS_SENTINEL_PASSWORD: SENTINEL_SECRET }, variable: 'REDIS_SENTINELS' },
  { name: 'REDIS_SENTINELS=nonsense', env: { ...base, REDIS_SENTINELS: 'nonsense' }, variable: 'REDIS_SENTINELS' },
  { name: 'RETRY_BASE_DELAY_MS > RETRY_MAX_DELAY_MS', env: { ...base, RETRY_BASE_DELAY_MS: '900', RETRY_MAX_DELAY_MS: '100' }, variable: 'RETRY_BASE_DELAY_MS' }
]
// Started now, checked below: it idles while the refused configurations run one after another.
const longRun = runServer({ REDIS_SENTINELS: '127.0.0.1:1', REDIS_PASSWORD: SECRET, REDIS_SENTINEL_PASSWORD: SENTINEL_SECRET, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'debug' }, 8000)
const runs = await limited(cases, 1, async c => {
  const started = Date.now()
  const r = await runServer(c.env, 10_000)
  return { ...c, ...r, ms: Date.now() - started }
})

for (const r of runs) {
  t.test(`the server refuses ${r.name} with one stderr line naming ${r.variable}, never a secret`, async t => {
    t.not(r.code, null, `the process exited by itself (took ${r.ms} ms)`)
    t.not(r.code, 0, `exit code is non-zero (${r.code})`)
    t.ok(r.ms < 5000, `within a few seconds (${r.ms} ms)`)
    const lines = r.stderr.split('\n').filter(l => l.trim() !== '')
    t.equal(lines.length, 1, `exactly one line on stderr (got ${JSON.stringify(r.stderr)})`)
    t.match(lines[0] ?? '', r.variable, `the line names ${r.variable}`)
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace')
    t.equal(r.stdout, '', 'nothing on stdout')
    for (const secret of [SECRET, SENTINEL_SECRET]) {
      t.notOk(r.stderr.includes(secret) || r.stdout.includes(secret), 'no password in the output')
    }
  })
}

t.test('the missing-REDIS_SENTINELS line is a readable sentence', async t => {
  const line = runs.find(r => r.name === 'REDIS_SENTINELS missing')?.stderr.trim() ?? ''
  t.comment(line)
  t.equal((line.match(/`/g) ?? []).length % 2, 0, 'backticks are balanced (the description is not cut inside a code span)')
  t.notMatch(line, /,\s*$/, 'the line does not end in the middle of a list')
})

t.test('a server with a valid config keeps running, logs the sentinel-count warning and never logs the password', async t => {
  // One unreachable sentinel: valid config (with a warning); the server must start and keep trying.
  const r = await longRun
  t.equal(r.code, null, `still running when stopped after 8 s (exit code ${r.code}, stderr ${JSON.stringify(r.stderr.slice(0, 300))})`)
  const lines = r.stdout.split('\n').filter(l => l.trim() !== '').map(l => JSON.parse(l) as { level: number; msg: string })
  t.ok(lines.some(l => l.level === 40 && /REDIS_SENTINELS lists 1 sentinel/.test(l.msg)), 'the sentinel-count warning is logged at warn level')
  t.ok(lines.some(l => l.msg === 'listening'), 'it listens although no sentinel answers')
  for (const secret of [SECRET, SENTINEL_SECRET]) {
    t.notOk(r.stdout.includes(secret) || r.stderr.includes(secret), 'no password anywhere in the output')
  }
})

t.test('loadConfig applies the documented defaults', async t => {
  const c = loadConfig({ REDIS_SENTINELS: SENTINELS })
  t.same(c.sentinels, [{ host: '127.0.0.1', port: 1 }, { host: '127.0.0.1', port: 2 }, { host: '127.0.0.1', port: 3 }])
  t.match(c, {
    masterName: 'mymaster',
    db: 0,
    readStrategy: 'round-robin',
    connectTimeoutMs: 2000,
    commandTimeoutMs: 1000,
    poolSize: 2,
    refreshIntervalMs: 1000,
    waitTimeoutMs: 500,
    durability: 'replicated',
    retryBudgetMs: 5000,
    retryBaseDelayMs: 25,
    retryMaxDelayMs: 500,
    replicaMaxLagBytes: 1048576,
    breaker: { errorThresholdPercentage: 50, volumeThreshold: 5, resetTimeout: 5000, rollingCountTimeout: 10000 },
    maxKeyBytes: 1024,
    maxValueBytes: 1048576,
    host: '0.0.0.0',
    port: 3000,
    logLevel: 'info'
  })
  t.equal(c.redisPassword, undefined, 'no password unless given')
  t.equal(c.redisUsername, undefined)
  t.same(c.warnings, [], 'three sentinels: no warning')
  // Every documented default parses (the table and the parser agree).
  for (const v of VARIABLES) {
    if ('default' in v) t.doesNotThrow(() => loadConfig({ REDIS_SENTINELS: SENTINELS, [v.env]: v.default }), `${v.env} default "${v.default}" is valid`)
  }
})

t.test('loadConfig reads every variable it is given', async t => {
  const c = loadConfig({
    REDIS_SENTINELS: 'a:1,b:2,c:3',
    REDIS_MASTER_NAME: 'other',
    REDIS_PASSWORD: SECRET,
    REDIS_DB: '15',
    REDIS_READ_STRATEGY: 'least-latency',
    WRITE_DURABILITY: 'none',
    PORT: '0',
    KV_MAX_KEY_BYTES: '10',
    KV_MAX_VALUE_BYTES: '20',
    LOG_LEVEL: 'silent'
  })
  t.match(c, { masterName: 'other', redisPassword: SECRET, db: 15, readStrategy: 'least-latency', durability: 'none', port: 0, maxKeyBytes: 10, maxValueBytes: 20, logLevel: 'silent' })
  t.same(c.sentinels.map(s => `${s.host}:${s.port}`), ['a:1', 'b:2', 'c:3'])
})

t.test('loadConfig warns about 1, 2 or 4 sentinels, not about 3 or 5', async t => {
  const list = (n: number): string => Array.from({ length: n }, (_, i) => `127.0.0.1:${26379 + i}`).join(',')
  for (const n of [1, 2, 4]) {
    const c = loadConfig({ REDIS_SENTINELS: list(n) })
    t.equal(c.sentinels.length, n)
    t.equal(c.warnings.length, 1, `${n} sentinel(s): one warning`)
    t.match(c.warnings[0] ?? '', /REDIS_SENTINELS/, 'the warning names the variable')
    t.match(c.warnings[0] ?? '', String(n), 'and the count')
  }
  for (const n of [3, 5]) t.same(loadConfig({ REDIS_SENTINELS: list(n) }).warnings, [], `${n} sentinels: no warning`)
})

t.test('a near-cache bound above a quarter of the heap limit is a warning; the near-cache switch', async t => {
  const limit = getHeapStatistics().heap_size_limit
  const big = loadConfig({ REDIS_SENTINELS: SENTINELS, NEAR_CACHE_MAX_BYTES: String(Math.min(4 * 1024 ** 3, Math.ceil(limit / 4) + 1)) })
  t.equal(big.warnings.length, 1)
  t.match(big.warnings[0] ?? '', /NEAR_CACHE_MAX_BYTES .*heap limit/)
  t.same(loadConfig({ REDIS_SENTINELS: SENTINELS }).nearCache, { maxBytes: 33554432, maxValueBytes: 65536 }, 'on by default')
  t.equal(loadConfig({ REDIS_SENTINELS: SENTINELS, NEAR_CACHE: 'false', NEAR_CACHE_MAX_BYTES: String(4 * 1024 ** 3) }).nearCache, undefined, 'NEAR_CACHE=false: off, and no warning about its bound')
  t.same(loadConfig({ REDIS_SENTINELS: SENTINELS, NEAR_CACHE: 'false', NEAR_CACHE_MAX_BYTES: String(4 * 1024 ** 3) }).warnings, [])
})

t.test('parseHostPorts reads host:port lists, IPv6 in brackets', async t => {
  t.same(parseHostPorts('[::1]:26379'), [{ host: '::1', port: 26379 }], '[::1]:26379')
  t.same(parseHostPorts('[fe80::1:2]:1,localhost:65535, 10.0.0.1:26379 '), [
    { host: 'fe80::1:2', port: 1 }, { host: 'localhost', port: 65535 }, { host: '10.0.0.1', port: 26379 }
  ], 'a mixed list, spaces around entries ignored')
  t.same(parseHostPorts('a:1,,b:2,'), [{ host: 'a', port: 1 }, { host: 'b', port: 2 }], 'empty entries are skipped')
  for (const bad of ['nonsense', '::1:26379', '[::1]', '[::1]26379', '[nothost]:1', 'host:0', 'host:65536', 'host:', ':26379', 'host:12ab', '', ' , ']) {
    t.type(parseHostPorts(bad), 'string', `${JSON.stringify(bad)} is refused with a reason`)
  }
  const c = loadConfig({ REDIS_SENTINELS: '[::1]:26379,[::1]:26380,[::1]:26381' })
  t.same(c.sentinels, [{ host: '::1', port: 26379 }, { host: '::1', port: 26380 }, { host: '::1', port: 26381 }], 'loadConfig accepts IPv6 sentinels')
})

t.test('loadConfig throws a one-line ConfigError naming the variable', async t => {
  const bad: Array<[string, Record<string, string>]> = [
    ['PORT', { PORT: 'abc' }],
    ['PORT', { PORT: '1.5' }],
    ['REDIS_DB', { REDIS_DB: '-1' }],
    ['REDIS_POOL_SIZE', { REDIS_POOL_SIZE: '0' }],
    ['REDIS_READ_STRATEGY', { REDIS_READ_STRATEGY: 'fastest' }],
    ['LOG_LEVEL', { LOG_LEVEL: 'verbose' }],
    ['REDIS_SENTINELS', { REDIS_SENTINELS: 'nonsense' }],
    ['RETRY_BASE_DELAY_MS', { RETRY_BASE_DELAY_MS: '600', RETRY_MAX_DELAY_MS: '500' }]
  ]
  for (const [variable, env] of bad) {
    let err: unknown
    try {
      loadConfig({ REDIS_SENTINELS: SENTINELS, REDIS_PASSWORD: SECRET, ...env })
    } catch (e) { err = e }
    t.ok(err instanceof ConfigError, `${JSON.stringify(env)} throws ConfigError`)
    const msg = (err as Error | undefined)?.message ?? ''
    t.match(msg, variable, `the message names ${variable}`)
    t.notMatch(msg, /\n/, 'one line')
    t.notOk(msg.includes(SECRET), 'no secret in the message')
    t.equal((err as ConfigError | undefined)?.code, 'GW_ERR_CONFIG_INVALID')
  }
  t.throws(() => loadConfig({}), { message: /REDIS_SENTINELS/ }, 'REDIS_SENTINELS is required')
})
