/**
 * The command policy decided from a real server's command table (a lone redis-server started
 * here answers `COMMAND`): what is admitted, who may run it, where its keys are.
 */
import { mkdtemp } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { OPEN_ACCESS, type Principal } from '../../src/auth.js'
import { CommandTable } from '../../src/security/command-table.js'
import { xreadBlocks } from '../../src/security/keys.js'
import { CommandRefused, decide, NoPermission, routeOf, type Arg } from '../../src/security/policy.js'
import { filterReply } from '../../src/security/gate.js'
import { freePorts, NodeSet, probe, resolveBinaries } from '../helpers/topology-procs.js'

const ADMIN: Principal = { name: 'admin', rights: new Set(['read', 'write', 'script', 'pubsub', 'ops']), prefix: '' }
const READER: Principal = { name: 'reader', rights: new Set(['read']), prefix: '' }
const SESS: Principal = { name: 'sess', rights: new Set(['read', 'write', 'pubsub']), prefix: 'session:' }
const settings = { deny: new Set<string>(), maxValueBytes: 1024 }

let table: CommandTable

t.before(async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'skv-policy-'))
  const nodes = new NodeSet(root, resolveBinaries(), () => undefined, () => {})
  const [port] = await freePorts(1)
  const proc = nodes.create('redis', port!)
  await nodes.launch(proc, ['save ""', 'appendonly no'])
  try {
    await nodes.waitPing(proc)
    table = CommandTable.fromReply(await probe(port!, undefined, async c => await c.call('COMMAND')))
  } finally {
    await nodes.stop()
  }
})

const d = (p: Principal, ...cmd: Arg[]): ReturnType<typeof decide> => decide(p, cmd, table, settings)

t.test('the table is the server\'s', async t => {
  t.ok(table.size > 200, `${table.size} commands`)
  t.ok(table.has('GET') && table.has('xautoclaim'))
  t.notOk(table.has('json.get'), 'no module loaded: JSON.GET is unknown')
  t.throws(() => d(ADMIN, 'JSON.GET', 'k'), new CommandRefused("ERR unknown command 'JSON.GET'"))
  t.throws(() => d(ADMIN, '\u0001'.repeat(100)), { message: /^ERR unknown command '\?{64}\.\.\.'$/ }, 'a weird name is printed safely')
})

t.test('routing and read-only from flags and key specs', async t => {
  t.match(d(ADMIN, 'GET', 'k'), { name: 'get', readOnly: true, route: 'replica' })
  t.match(d(ADMIN, 'get', 'k'), { route: 'replica' }, 'names are case-insensitive')
  for (const cmd of [['SET', 'k', 'v'], ['INCR', 'k'], ['LPUSH', 'k', 'v'], ['DEL', 'k'], ['EXPIRE', 'k', '1'], ['XGROUP', 'CREATE', 's', 'g', '$']]) {
    t.match(d(ADMIN, ...cmd), { readOnly: false, route: 'write' }, `${cmd[0]} is a write`)
  }
  for (const cmd of [['HGETALL', 'k'], ['ZRANGE', 'k', '0', '-1'], ['MGET', 'a', 'b'], ['XREAD', 'STREAMS', 's', '0'], ['OBJECT', 'ENCODING', 'k']]) {
    t.match(d(READER, ...cmd), { readOnly: true, route: 'replica' }, `${cmd[0]} reads on a replica`)
  }
  t.match(d(ADMIN, 'PFCOUNT', 'h'), { readOnly: false, route: 'write' }, 'PFCOUNT rewrites its key (RW key spec): a write')
  t.throws(() => d(READER, 'PFCOUNT', 'h'), NoPermission, 'so a read-only token cannot run it (finding 14)')
  t.match(d(ADMIN, 'SCAN', '0'), { route: 'master', filter: 'scan' }, 'SCAN cursors: the master, reserved keys filtered')
  t.match(d(ADMIN, 'HSCAN', 'k', '0'), { route: 'master' })
  t.match(d(READER, 'PING'), { route: 'master', readOnly: true })
  t.match(d(ADMIN, 'EVAL', 'return 1', '0'), { route: 'write', script: true })
  t.match(d(ADMIN, 'EVAL_RO', 'return 1', '0'), { route: 'replica', script: true, readOnly: true })
  t.match(d(ADMIN, 'PUBLISH', 'c', 'm'), { route: 'master' })
  t.equal(routeOf([d(ADMIN, 'GET', 'a'), d(ADMIN, 'MGET', 'a', 'b')]), 'replica')
  t.equal(routeOf([d(ADMIN, 'GET', 'a'), d(ADMIN, 'SCAN', '0')]), 'master')
  t.equal(routeOf([d(ADMIN, 'GET', 'a'), d(ADMIN, 'PING'), d(ADMIN, 'SET', 'a', 'b')]), 'write')
})

t.test('refused for every token: admin, dangerous, connection, transaction, blocking, other databases', async t => {
  const refused = [
    ['FLUSHALL'], ['FLUSHDB'], ['KEYS', '*'], ['INFO'], ['SLOWLOG', 'GET'], ['CONFIG', 'GET', '*'], ['DEBUG', 'SLEEP', '0'],
    ['SELECT', '1'], ['MOVE', 'k', '1'], ['SWAPDB', '0', '1'], ['MIGRATE', '127.0.0.1', '1', 'k', '0', '10'],
    ['RESTORE', 'k', '0', 'x'], ['SORT', 'k'], ['SORT_RO', 'k'], ['CLIENT', 'LIST'], ['CLIENT', 'ID'], ['WAIT', '1', '0'], ['MULTI'], ['EXEC'], ['WATCH', 'k'],
    ['AUTH', 'x'], ['HELLO'], ['QUIT'], ['RESET'], ['SYNC'], ['PSYNC', 'x', '1'], ['MONITOR'], ['ROLE'], ['SHUTDOWN'], ['REPLICAOF', 'no', 'one'],
    ['SUBSCRIBE', 'c'], ['PSUBSCRIBE', 'c'], ['SSUBSCRIBE', 'c'], ['UNSUBSCRIBE'], ['SCRIPT', 'FLUSH'], ['SCRIPT', 'LOAD', 'return 1'], ['FUNCTION', 'FLUSH'],
    ['BLPOP', 'k', '0'], ['BRPOPLPUSH', 'a', 'b', '0'], ['BZPOPMIN', 'k', '0'], ['BLMOVE', 'a', 'b', 'LEFT', 'LEFT', '0'], ['BLMPOP', '0', '1', 'k', 'LEFT'],
    ['XREAD', 'BLOCK', '0', 'STREAMS', 's', '$'], ['XREADGROUP', 'GROUP', 'g', 'c', 'BLOCK', '5', 'STREAMS', 's', '>'],
    ['XREADGROUP', 'GROUP', 'g', 'STREAMS', 'BLOCK', '20000', 'STREAMS', 'k', '>'], ['PFDEBUG', 'GETREG', 'k'], ['PFSELFTEST'],
    ['COPY', 'a', 'b', 'DB', '9', 'REPLACE'], ['COPY', 'a', 'b', 'db', '9'], ['MEMORY', 'USAGE', 'k'], ['COMMAND'], ['LATENCY', 'LATEST'], ['LOLWUT'],
    ['OBJECT', 'NOSUCH', 'k']
  ]
  for (const cmd of refused) t.throws(() => d(ADMIN, ...cmd), CommandRefused, `${cmd.join(' ')} is refused (400)`)
  t.throws(() => d(ADMIN, 'MULTI'), { message: /POST \/multi-exec/ })
  t.throws(() => d(ADMIN, 'XREADGROUP', 'GROUP', 'g', 'STREAMS', 'BLOCK', '20000', 'STREAMS', 'k', '>'), { message: /blocks/ }, 'finding 7: BLOCK found where Redis finds it')
  t.doesNotThrow(() => d(ADMIN, 'XREADGROUP', 'GROUP', 'g', 'c', 'COUNT', '1', 'STREAMS', 's', '>'), 'XREADGROUP without BLOCK is allowed')
  t.doesNotThrow(() => d(ADMIN, 'XREAD', 'STREAMS', 'BLOCK', '0'), 'a stream named BLOCK is not the option')
  t.throws(() => d(ADMIN, 'COPY', 'a', 'b', 'REPLACE'), { message: /DB option/ }, 'COPY as a whole: Redis ACL cannot tell its DB option apart')
  t.throws(() => d(ADMIN, 'GET'), { message: /wrong number of arguments/ })
  t.throws(() => decide(ADMIN, ['GET', 'k'], table, { ...settings, deny: new Set(['get']) }), { message: /UPSTASH_DENY_COMMANDS/ })
  t.throws(() => decide(ADMIN, ['OBJECT', 'FREQ', 'k'], table, { ...settings, deny: new Set(['object|freq']) }), { message: /UPSTASH_DENY_COMMANDS/ }, 'a subcommand can be denied alone')
})

t.test('xreadBlocks reads options as Redis does', async t => {
  t.equal(xreadBlocks(['xread', 'COUNT', '1', 'BLOCK', '0', 'STREAMS', 'a', '0']), true)
  t.equal(xreadBlocks(['xread', 'STREAMS', 'BLOCK', '0']), false)
  t.equal(xreadBlocks(['xreadgroup', 'GROUP', 'BLOCK', 'STREAMS', 'NOACK', 'BLOCK', '1', 'STREAMS', 'k', '>']), true)
  t.equal(xreadBlocks(['xreadgroup', 'GROUP', 'g', 'c', 'NOACK', 'STREAMS', 'k', '>']), false)
})

t.test('rights: r, w, x, p', async t => {
  const W: Principal = { name: 'w', rights: new Set(['write']), prefix: '' }
  const RW: Principal = { name: 'rw', rights: new Set(['read', 'write']), prefix: '' }
  const RX: Principal = { name: 'rx', rights: new Set(['read', 'script']), prefix: '' }
  t.doesNotThrow(() => d(OPEN_ACCESS, 'SET', 'k', 'v'))
  t.throws(() => d(READER, 'SET', 'k', 'v'), { message: /no write right/ })
  t.throws(() => d(W, 'SET', 'k', 'v'), { message: /no read right/ }, 'writes answer data: a write-only token cannot use the endpoint')
  t.doesNotThrow(() => d(W, 'PING'))
  for (const p of [OPEN_ACCESS, RW, READER]) {
    t.throws(() => d(p, 'EVAL', 'return 1', '0'), { message: /no script right/ }, `${p.name}: scripts need x`)
    t.throws(() => d(p, 'EVAL_RO', 'return 1', '0'), NoPermission)
    t.throws(() => d(p, 'FCALL_RO', 'f', '0'), NoPermission)
    t.throws(() => d(p, 'PUBLISH', 'c', 'm'), { message: /no pubsub right/ }, `${p.name}: PUBLISH needs p`)
  }
  t.doesNotThrow(() => d(RX, 'EVAL_RO', 'return 1', '0'), 'x with r runs read-only scripts')
  t.throws(() => d(RX, 'EVAL', 'return 1', '0'), { message: /no write right/ }, 'and not scripts that may write')
  t.doesNotThrow(() => d(ADMIN, 'EVALSHA', 'a'.repeat(40), '0'))
})

t.test('reserved keys and channels, for every token', async t => {
  for (const cmd of [['GET', '__skv:ratelimit:token-1'], ['SET', '__skv:x', '1'], ['DEL', 'a', '__skv:x'], ['RENAME', 'a', '__skv:x'],
    ['EVAL', 'return 1', '1', '__skv:x'], ['GEORADIUS', 'g', '0', '0', '1', 'm', 'STORE', 'a', 'STORE', '__skv:x']]) {
    t.throws(() => d(ADMIN, ...cmd), { message: /reserved for the gateway/ }, `${cmd.join(' ')} is 403`)
  }
  t.doesNotThrow(() => d(ADMIN, 'GET', '__skvx'), 'only the exact prefix is reserved')
  for (const ch of ['__sentinel__:hello', '__redis__:invalidate', '__keyspace@0__:k', '__keyevent@0__:set', '__anything']) {
    t.throws(() => d(ADMIN, 'PUBLISH', ch, 'x'), { message: /reserved for Redis and Sentinel/ }, `PUBLISH ${ch} is 403 (finding 1)`)
    t.throws(() => d(ADMIN, 'SPUBLISH', ch, 'x'), NoPermission)
  }
  t.doesNotThrow(() => d(ADMIN, 'PUBLISH', '_x', 'm'))
  t.same(filterReply('scan', [Buffer.from('0'), [Buffer.from('a'), Buffer.from('__skv:ratelimit:x')]]), [Buffer.from('0'), [Buffer.from('a')]])
  t.equal(filterReply('randomkey', Buffer.from('__skv:x')), null)
  t.same(filterReply('channels', [Buffer.from('__sentinel__:hello'), Buffer.from('news')]), [Buffer.from('news')])
})

t.test('a prefixed token: every key, channel and pattern inside its prefix', async t => {
  t.doesNotThrow(() => d(SESS, 'MSET', 'session:a', '1', 'session:b', '2'))
  t.throws(() => d(SESS, 'MSET', 'session:a', '1', 'b', '2'), { message: /names another key/ })
  // Finding 6: Redis stores into the LAST STORE; its key specs and COMMAND GETKEYS name the first.
  t.throws(() => d(SESS, 'GEORADIUS', 'session:geo', '0', '0', '1', 'm', 'STORE', 'session:tmp', 'STORE', 'other:victim'), { message: /names another key/ })
  t.throws(() => d(SESS, 'GEORADIUS', 'session:geo', '0', '0', '1', 'm', 'STOREDIST', 'session:tmp', 'STORE', 'other:victim'), NoPermission)
  t.throws(() => d(SESS, 'GEORADIUSBYMEMBER', 'session:geo', 'm', '1', 'm', 'STORE', 'other:victim'), NoPermission)
  t.doesNotThrow(() => d(SESS, 'GEORADIUS', 'session:geo', '0', '0', '1', 'm', 'STORE', 'session:tmp', 'STORE', 'session:b'))
  t.throws(() => d(SESS, 'ZUNIONSTORE', 'other:d', '1', 'session:a'), NoPermission)
  t.throws(() => d(SESS, 'ZUNIONSTORE', 'session:d', '2', 'session:a', 'other:b'), NoPermission)
  t.doesNotThrow(() => d(SESS, 'ZUNIONSTORE', 'session:d', '2', 'session:a', 'session:b', 'WEIGHTS', '1', '2'))
  t.throws(() => d(SESS, 'XREAD', 'STREAMS', 'session:s', 'other:s', '0', '0'), NoPermission)
  t.throws(() => d(SESS, 'XREADGROUP', 'GROUP', 'g', 'c', 'STREAMS', 'other:s', '>'), NoPermission)
  for (const cmd of [['RENAME', 'session:a', 'other:b'], ['SMOVE', 'session:a', 'other:b', 'm'], ['LMOVE', 'session:a', 'other:b', 'LEFT', 'LEFT'],
    ['RPOPLPUSH', 'session:a', 'other:b'], ['BITOP', 'AND', 'other:d', 'session:a'], ['SINTERSTORE', 'other:d', 'session:a'],
    ['OBJECT', 'ENCODING', 'other:a'], ['LMPOP', '2', 'session:a', 'other:b', 'LEFT'], ['ZDIFFSTORE', 'session:d', '1', 'other:a']]) {
    t.throws(() => d(SESS, ...cmd), NoPermission, `${cmd.join(' ')} is 403`)
  }
  t.throws(() => d(SESS, 'SCAN', '0'), { message: /names no key/ })
  t.throws(() => d(SESS, 'DBSIZE'), { message: /names no key/ })
  t.throws(() => d(SESS, 'RANDOMKEY'), { message: /names no key/ })
  t.throws(() => d(SESS, 'EVAL_RO', 's', '1', 'session:a'), NoPermission, 'never scripts')
  t.doesNotThrow(() => d(SESS, 'PUBLISH', 'session:news', 'm'))
  t.throws(() => d(SESS, 'PUBLISH', 'news', 'm'), { message: /channels starting with "session:"/ })
  t.doesNotThrow(() => d(SESS, 'PUBSUB', 'CHANNELS', 'session:*'))
  t.throws(() => d(SESS, 'PUBSUB', 'CHANNELS'), NoPermission)
  t.throws(() => d(SESS, 'PUBSUB', 'CHANNELS', '*'), NoPermission)
  t.throws(() => d(SESS, 'PUBSUB', 'NUMPAT'), NoPermission)
  t.doesNotThrow(() => d(SESS, 'PING'))
  t.throws(() => decide(SESS, ['GET', Buffer.from('sess')], table, settings), { message: /names another key/ }, 'a key shorter than the prefix')
  t.doesNotThrow(() => decide(SESS, ['GET', Buffer.concat([Buffer.from('session:'), Buffer.from([0xff])])], table, settings), 'prefix compared as bytes')
})

t.test('arguments that would grow a value past KV_MAX_VALUE_BYTES (1024 here)', async t => {
  t.throws(() => d(ADMIN, 'SETRANGE', 'k', '104857599', 'x'), { message: /SETRANGE at offset 104857599 would make a value larger than KV_MAX_VALUE_BYTES/ })
  t.doesNotThrow(() => d(ADMIN, 'SETRANGE', 'k', '1000', 'x'))
  t.doesNotThrow(() => d(ADMIN, 'SETRANGE', 'k', '999999', ''), 'an empty value grows nothing')
  t.throws(() => d(ADMIN, 'SETBIT', 'k', String(1024 * 8), '1'), CommandRefused)
  t.doesNotThrow(() => d(ADMIN, 'SETBIT', 'k', String(1024 * 8 - 1), '1'))
  t.throws(() => d(ADMIN, 'BITFIELD', 'k', 'SET', 'u8', '#1024', '1'), CommandRefused)
  t.throws(() => d(ADMIN, 'BITFIELD', 'k', 'GET', 'u8', '0', 'INCRBY', 'i64', '8192', '1'), CommandRefused)
  t.doesNotThrow(() => d(ADMIN, 'BITFIELD', 'k', 'GET', 'u8', '#99999', 'SET', 'u8', '#1023', '1'), 'GET grows nothing')
  t.throws(() => d(ADMIN, 'SET', 'k', 'x'.repeat(1025)), CommandRefused)
  t.match(d(ADMIN, 'APPEND', 'k', 'abc'), { append: { key: 'k', adds: 3 } }, 'APPEND is checked against the current length')
})
