/**
 * Keys out of a token's reach (findings 6, 10, 11, 14).
 * 6/10. SESS (rw inside `session:`) tried every command whose keys the static table places wrongly
 *   or not at all: GEORADIUS ... STORE twice, STORE/STOREDIST destinations, Z*STORE, SORT STORE/BY/GET,
 *   XREAD/XREADGROUP with other streams, COPY ... DB, MSET odd positions, BITOP, OBJECT/MEMORY/DEBUG,
 *   RENAME/SMOVE/LMOVE... destinations, MIGRATE. Each is replayed on every route, must be 403 (400 for
 *   commands outside the allowlist) and no key outside `session:` may change on the master.
 * 11. Arguments that grow a value past KV_MAX_VALUE_BYTES (SETRANGE/SETBIT/BITFIELD offsets, APPEND)
 *   are refused before Redis sees them: STRLEN and used_memory on the master prove nothing grew.
 * 14. PFCOUNT rewrites the HLL cache: READER (r only) is refused and DUMP of the HLL is unchanged.
 */
import t from 'tap'
import { checkServers, outsideSession, securityEnv, snapshot, TOKENS, type TokenKind } from '../helpers/security.js'
import { expectAnswered, expectRefused, ROUTES, send, type Refusal } from '../helpers/security-http.js'

const MAX_VALUE = 65_536
const env = await securityEnv(t, { env: { KV_MAX_VALUE_BYTES: String(MAX_VALUE) } })
const m = env.master

// Sources inside the prefix and victims outside it, written directly on the master.
await m.geoadd('session:geo', 0, 0, 'm1', 0.001, 0.001, 'm2')
await m.geoadd('other:geo', 0, 0, 'v1')
await m.zadd('session:z1', 1, 'a', 2, 'b')
await m.zadd('other:zset', 1, 'victim')
await m.sadd('session:s1', 'a', 'b')
await m.sadd('other:set', 'victim')
await m.rpush('session:l1', '3', '1', '2')
await m.rpush('other:list', 'victim')
await m.set('session:a', 'A')
await m.set('session:b', 'B')
await m.xadd('session:st', '*', 'f', 'v')
await m.xadd('other:stream', '*', 'f', 'victim')
await m.call('XGROUP', 'CREATE', 'session:st', 'g', '0')
await m.call('XGROUP', 'CREATE', 'other:stream', 'g', '0')
await m.pfadd('session:hll', 'a', 'b', 'c')
await m.pfadd('other:hll', 'a', 'b', 'c')
await m.set('session:app', Buffer.alloc(MAX_VALUE - 10, 'a'))
await m.call('WAIT', '2', '2000')

/** The prefix escapes: [command, expected refusal]. */
const ESCAPES: Array<[string[], Refusal]> = [
  [['GEORADIUS', 'session:geo', '0', '0', '1', 'm', 'STORE', 'session:tmp', 'STORE', 'other:victim'], 403],
  [['GEORADIUS', 'session:geo', '0', '0', '1', 'm', 'STORE', 'other:victim'], 403],
  [['GEORADIUS', 'session:geo', '0', '0', '1', 'm', 'STOREDIST', 'session:tmp', 'STOREDIST', 'other:victim'], 403],
  [['GEORADIUS', 'session:geo', '0', '0', '1', 'm', 'STORE', 'session:tmp', 'STOREDIST', 'other:victim'], 403],
  [['georadius', 'session:geo', '0', '0', '1', 'm', 'store', 'session:tmp', 'Store', 'other:victim'], 403],
  [['GEORADIUSBYMEMBER', 'session:geo', 'm1', '100', 'km', 'STORE', 'other:victim'], 403],
  [['GEORADIUSBYMEMBER', 'session:geo', 'm1', '100', 'km', 'STORE', 'session:tmp', 'STORE', 'other:victim'], 403],
  [['GEORADIUSBYMEMBER', 'session:geo', 'm1', '100', 'km', 'STOREDIST', 'session:tmp', 'STOREDIST', 'other:victim'], 403],
  [['GEOSEARCHSTORE', 'other:victim', 'session:geo', 'FROMMEMBER', 'm1', 'BYRADIUS', '100', 'km'], 403],
  [['GEORADIUS_RO', 'other:geo', '0', '0', '1', 'm'], 403],
  [['ZUNIONSTORE', 'other:zset', '1', 'session:z1'], 403],
  [['ZINTERSTORE', 'other:zset', '1', 'session:z1'], 403],
  [['ZDIFFSTORE', 'other:zset', '1', 'session:z1'], 403],
  [['ZRANGESTORE', 'other:zset', 'session:z1', '0', '-1'], 403],
  [['ZUNIONSTORE', 'session:dst', '2', 'session:z1', 'other:zset'], 403],
  [['ZUNION', '2', 'session:z1', 'other:zset'], 403],
  [['SORT', 'session:l1', 'STORE', 'other:list'], 'any'],
  [['SORT', 'session:l1', 'BY', 'other:*'], 'any'],
  [['SORT', 'session:l1', 'GET', 'other:*'], 'any'],
  [['SORT', 'session:l1', 'BY', 'nosort', 'GET', '#', 'STORE', 'other:list'], 'any'],
  [['SORT_RO', 'session:l1', 'BY', 'other:*', 'GET', 'other:*'], 'any'],
  [['XREAD', 'STREAMS', 'session:st', 'other:stream', '0', '0'], 403],
  [['XREAD', 'COUNT', '1', 'STREAMS', 'session:st', 'other:stream', '0', '0'], 403],
  [['XREADGROUP', 'GROUP', 'g', 'c', 'STREAMS', 'session:st', 'other:stream', '>', '>'], 403],
  [['XREADGROUP', 'GROUP', 'g', 'STREAMS', 'STREAMS', 'session:st', 'other:stream', '>', '>'], 403],
  [['COPY', 'session:a', 'session:a', 'DB', '9', 'REPLACE'], 400],
  [['COPY', 'session:a', 'session:a2', 'db', '9'], 400],
  [['COPY', 'session:a', 'other:victim', 'REPLACE'], 400], // COPY is refused whole (its DB option)
  [['MSET', 'session:a', '1', 'other:victim', 'x'], 403],
  [['MSET', 'other:victim', 'x', 'session:a', '1'], 403],
  [['MSETNX', 'session:n', '1', 'other:new', 'x'], 403],
  [['BITOP', 'AND', 'other:victim', 'session:a', 'session:b'], 403],
  [['BITOP', 'OR', 'session:dst', 'other:victim'], 403],
  [['OBJECT', 'ENCODING', 'other:victim'], 403],
  [['OBJECT', 'IDLETIME', 'other:victim'], 403],
  [['MEMORY', 'USAGE', 'other:victim'], 'any'],
  [['DEBUG', 'OBJECT', 'other:victim'], 400],
  [['RENAME', 'session:a', 'other:victim'], 403],
  [['RENAME', 'other:victim', 'session:stolen'], 403],
  [['RENAMENX', 'session:b', 'other:new'], 403],
  [['SMOVE', 'session:s1', 'other:set', 'a'], 403],
  [['LMOVE', 'session:l1', 'other:list', 'LEFT', 'RIGHT'], 403],
  [['RPOPLPUSH', 'session:l1', 'other:list'], 403],
  [['BLMOVE', 'session:l1', 'other:list', 'LEFT', 'RIGHT', '0.1'], 'any'],
  [['SINTERSTORE', 'other:set', 'session:s1'], 403],
  [['SUNIONSTORE', 'other:set', 'session:s1'], 403],
  [['SDIFFSTORE', 'other:set', 'session:s1'], 403],
  [['SINTERCARD', '2', 'session:s1', 'other:set'], 403],
  [['LMPOP', '2', 'session:l1', 'other:list', 'LEFT'], 403],
  [['ZMPOP', '2', 'session:z1', 'other:zset', 'MIN'], 403],
  [['PFMERGE', 'other:hll', 'session:hll'], 403],
  [['PFCOUNT', 'session:hll', 'other:hll'], 403],
  [['LCS', 'session:a', 'other:victim'], 403],
  [['DEL', 'session:a', 'other:victim'], 403],
  [['UNLINK', 'other:victim'], 403],
  [['EXPIRE', 'other:victim', '1'], 403],
  [['GETEX', 'other:victim', 'PX', '1'], 403],
  [['XADD', 'other:stream', '*', 'f', 'v'], 403],
  [['XCLAIM', 'other:stream', 'g', 'c', '0', '0-0'], 403],
  [['MIGRATE', '127.0.0.1', '1', 'session:a', '0', '1000'], 400],
  [['MIGRATE', '127.0.0.1', '1', '', '0', '1000', 'KEYS', 'session:a', 'other:victim'], 400],
  [['EVAL', "return redis.call('DEL', 'other:victim')", '0'], 403],
  [['EVAL', "return redis.call('DEL', KEYS[1])", '1', 'session:a'], 403]
]

t.test('findings 6/10: SESS prefix escapes are refused on every route and no key outside session: changes', async t => {
  const before = await snapshot(m)
  for (const [cmd, want] of ESCAPES) {
    // The path form cannot carry an empty segment.
    const routes = cmd.includes('') ? ROUTES.filter(r => r !== 'path') : ROUTES
    await expectRefused(t, env.url, 'sess', TOKENS.sess, cmd, want, routes)
  }
  // The same token still works inside its prefix (the refusals are not "refuse everything").
  expectAnswered(t, await send(env.url, TOKENS.sess, 'single', ['GEORADIUS', 'session:geo', '0', '0', '1', 'm', 'STORE', 'session:tmp']), 'sess GEORADIUS ... STORE session:tmp')
  expectAnswered(t, await send(env.url, TOKENS.sess, 'single', ['ZUNIONSTORE', 'session:zu', '1', 'session:z1']), 'sess ZUNIONSTORE session:zu 1 session:z1')
  expectAnswered(t, await send(env.url, TOKENS.sess, 'single', ['XREAD', 'COUNT', '1', 'STREAMS', 'session:st', '0']), 'sess XREAD STREAMS session:st 0')
  await checkServers(t, env, { what: 'after the prefix escapes', before, which: outsideSession })
  t.equal(await env.on(env.masterPort, async c => { await c.select(9); return await c.dbsize() }), 0, 'db 9 is empty (COPY ... DB)')
})

t.test('finding 11: arguments that would grow a value past KV_MAX_VALUE_BYTES are refused for every writer', async t => {
  const memBefore = Number(/used_memory:(\d+)/.exec(await m.info('memory'))?.[1])
  const GROW: string[][] = [
    ['SETRANGE', 'session:big', '104857599', 'x'],
    ['SETRANGE', 'session:big', String(MAX_VALUE), 'x'],
    ['SETBIT', 'session:big', '838860792', '1'],
    ['SETBIT', 'session:big', String(MAX_VALUE * 8), '1'],
    ['BITFIELD', 'session:big', 'SET', 'u8', '#13107199', '1'],
    ['BITFIELD', 'session:big', 'SET', 'u8', '838860792', '1'],
    ['BITFIELD', 'session:big', 'GET', 'u8', '0', 'INCRBY', 'u32', '838860792', '1'],
    ['APPEND', 'session:app', 'x'.repeat(20)],
    ['SETRANGE', 'session:app', String(MAX_VALUE - 5), 'x'.repeat(10)]
  ]
  for (const kind of ['sess', 'admin'] as TokenKind[]) {
    for (const cmd of GROW) await expectRefused(t, env.url, kind, TOKENS[kind], cmd, 400)
  }
  t.equal(await m.strlen('session:big'), 0, 'STRLEN session:big on the master is 0: nothing was allocated')
  t.equal(await m.strlen('session:app'), MAX_VALUE - 10, 'session:app did not grow')
  const memAfter = Number(/used_memory:(\d+)/.exec(await m.info('memory'))?.[1])
  t.ok(memAfter - memBefore < 10 * 1024 * 1024, `the master's used_memory grew by less than 10 MB (${memAfter - memBefore} bytes)`)
  // Offsets inside the limit are still served.
  expectAnswered(t, await send(env.url, TOKENS.sess, 'single', ['SETRANGE', 'session:small', '100', 'x']), 'sess SETRANGE session:small 100 x')
  expectAnswered(t, await send(env.url, TOKENS.sess, 'single', ['SETBIT', 'session:small', '800', '1']), 'sess SETBIT session:small 800 1')
  await checkServers(t, env, { what: 'after the growth attacks' })
})

t.test('finding 14: READER cannot change stored bytes with PFCOUNT', async t => {
  const dumps = async (): Promise<string[]> => await Promise.all(env.topo.redis.flatMap(r => ['session:hll', 'other:hll'].map(async k =>
    `:${r.port} ${k} ${(await env.on(r.port, c => c.dumpBuffer(k)))?.toString('hex') ?? 'none'}`)))
  const before = await dumps()
  await expectRefused(t, env.url, 'reader', TOKENS.reader, ['PFCOUNT', 'session:hll'], 403)
  await expectRefused(t, env.url, 'reader', TOKENS.reader, ['PFCOUNT', 'other:hll', 'session:hll'], 403)
  await new Promise(resolve => setTimeout(resolve, 200))
  t.same(await dumps(), before, 'DUMP of both HLLs is byte-identical on the master and both replicas')
  // READER still reads.
  expectAnswered(t, await send(env.url, TOKENS.reader, 'single', ['GET', 'canary:string']), 'reader GET canary:string')
  // A token with w may (PFCOUNT is a write for the gateway).
  expectAnswered(t, await send(env.url, TOKENS.sess, 'single', ['PFCOUNT', 'session:hll']), 'sess PFCOUNT session:hll')
  await checkServers(t, env, { what: 'after READER PFCOUNT' })
})
