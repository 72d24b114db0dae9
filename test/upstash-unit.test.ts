/**
 * The Upstash endpoint's pieces without any server: command classification from the command
 * table, key positions, token policy, request parsing, answer encoding, configuration.
 */
import t from 'tap'
import { OPEN_ACCESS, type Principal } from '../src/auth.js'
import { ConfigError, loadConfig, parseCommandList } from '../src/config.js'
import { CommandRefused, describe, routeOf } from '../src/upstash/commands.js'
import { encodeResult, encodingOf } from '../src/upstash/encoding.js'
import { authorizeCommand, NoPermission } from '../src/upstash/policy.js'
import { firstSegment, parseJsonBody, pathCommand, queryToken, redactToken, syncTokenOf, toCommand, toCommands, UpstashHttpError } from '../src/upstash/protocol.js'

const NO_DENY = new Set<string>()
const info = (...cmd: string[]): ReturnType<typeof describe> => describe(cmd[0]!, cmd.slice(1), NO_DENY)

t.test('routing comes from the command table flags', async t => {
  t.match(info('GET', 'k'), { name: 'get', readOnly: true, writes: false, route: 'replica' })
  t.match(info('get', 'k'), { route: 'replica' }, 'names are case-insensitive')
  for (const cmd of [['SET', 'k', 'v'], ['INCR', 'k'], ['LPUSH', 'k', 'v'], ['DEL', 'k'], ['EXPIRE', 'k', '1'], ['SORT', 'k']]) {
    t.match(info(...cmd), { writes: true, route: 'write' }, `${cmd[0]} is a write`)
  }
  for (const cmd of [['HGETALL', 'k'], ['ZRANGE', 'k', '0', '-1'], ['MGET', 'a', 'b'], ['EVAL_RO', 'return 1', '0'], ['SORT_RO', 'k'], ['XREAD', 'STREAMS', 's', '0']]) {
    t.match(info(...cmd), { readOnly: true, route: 'replica' }, `${cmd[0]} reads on a replica`)
  }
  for (const cmd of [['EVAL', 'return 1', '0'], ['EVALSHA', 'abc', '0'], ['PUBLISH', 'c', 'm'], ['XGROUP', 'CREATE', 's', 'g', '$']]) {
    t.match(info(...cmd), { writes: true, route: 'write' }, `${cmd[0]} may write although the table has no write flag`)
  }
  t.match(info('SCAN', '0'), { readOnly: true, route: 'master' }, 'SCAN cursors: the master')
  t.match(info('HSCAN', 'k', '0'), { route: 'master' })
  t.match(info('PING'), { readOnly: false, writes: false, route: 'master' })
  t.match(info('OBJECT', 'ENCODING', 'k'), { route: 'master' })
  t.equal(routeOf([info('GET', 'a'), info('MGET', 'a', 'b')]), 'replica')
  t.equal(routeOf([info('GET', 'a'), info('SCAN', '0')]), 'master')
  t.equal(routeOf([info('GET', 'a'), info('PING'), info('SET', 'a', 'b')]), 'write')
})

t.test('unknown, denied, always refused and blocking commands', async t => {
  t.throws(() => info('NOSUCH'), new CommandRefused("ERR unknown command 'NOSUCH'", 'unknown'))
  t.throws(() => info('JSON.GET', 'k'), { kind: 'unknown', message: /unknown command/ }, 'module commands are not in the table')
  t.throws(() => describe('FLUSHALL', [], new Set(['flushall'])), { message: /FLUSHALL.*UPSTASH_DENY_COMMANDS/, kind: 'denied' })
  t.doesNotThrow(() => describe('FLUSHALL', [], NO_DENY), 'the configurable list decides for FLUSHALL')
  for (const name of ['SELECT', 'MULTI', 'EXEC', 'WATCH', 'SUBSCRIBE', 'PSUBSCRIBE', 'MONITOR', 'CLIENT', 'WAIT', 'AUTH', 'HELLO', 'QUIT', 'RESET', 'SYNC', 'PSYNC']) {
    t.throws(() => info(name, 'x'), { kind: 'denied', message: /not available through this gateway/ }, `${name} is always refused`)
  }
  t.throws(() => info('MULTI'), { message: /POST \/multi-exec/ })
  for (const cmd of [['BLPOP', 'k', '0'], ['BRPOPLPUSH', 'a', 'b', '0'], ['BZPOPMIN', 'k', '0'], ['BLMOVE', 'a', 'b', 'LEFT', 'LEFT', '0'], ['XREAD', 'BLOCK', '0', 'STREAMS', 's', '$'], ['XREADGROUP', 'GROUP', 'g', 'c', 'BLOCK', '5', 'STREAMS', 's', '>']]) {
    t.throws(() => info(...cmd), { message: /blocking command/ }, `${cmd.join(' ')} is refused`)
  }
  t.doesNotThrow(() => info('XREADGROUP', 'GROUP', 'g', 'c', 'COUNT', '1', 'STREAMS', 's', '>'), 'XREADGROUP without BLOCK is allowed')
  t.throws(() => info('\u0001'.repeat(100)), { message: /^ERR unknown command '\?{64}\.\.\.'$/ }, 'a weird name is printed safely')
})

t.test('key positions (getKeyIndexes)', async t => {
  t.same(info('MSET', 'a', '1', 'b', '2').keys, ['a', 'b'])
  t.same(info('EVAL', 's', '2', 'k1', 'k2', 'arg').keys, ['k1', 'k2'])
  t.same(info('ZUNIONSTORE', 'dst', '2', 'a', 'b', 'WEIGHTS', '1', '2').keys, ['dst', 'a', 'b'])
  t.same(info('SORT', 'k', 'BY', 'w_*', 'GET', '#', 'GET', 'o_*', 'STORE', 'dst').keys, ['k', 'w_*', 'o_*', 'dst'])
  t.same(info('XREAD', 'COUNT', '2', 'STREAMS', 's1', 's2', '0', '0').keys, ['s1', 's2'])
  t.same(info('RENAME', 'a', 'b').keys, ['a', 'b'])
  t.same(info('SCAN', '0').keys, [])
  const started = Date.now()
  t.same(info('EVAL', 's', '1000000000', 'k').keys, [], 'an absurd numkeys is not looped over')
  t.same(info('EVAL', 's', 'x', 'k').keys, [])
  t.ok(Date.now() - started < 100, 'and answers at once')
  const bin = Buffer.from([0xff, 0x00])
  t.same(describe('GET', [bin], NO_DENY).keys, [bin], 'binary keys are kept as bytes')
})

t.test('token policy: rights, prefix, scripts, keyless commands', async t => {
  const ro: Principal = { name: 'ro', rights: new Set(['read']), prefix: '' }
  const wo: Principal = { name: 'wo', rights: new Set(['write']), prefix: '' }
  const scoped: Principal = { name: 's', rights: new Set(['read', 'write']), prefix: 'app:' }
  const ok = (p: Principal, ...cmd: string[]): void => authorizeCommand(p, info(...cmd))
  t.doesNotThrow(() => ok(OPEN_ACCESS, 'SET', 'k', 'v'))
  t.doesNotThrow(() => ok(ro, 'GET', 'k'))
  t.throws(() => ok(ro, 'SET', 'k', 'v'), NoPermission)
  t.throws(() => ok(ro, 'EVAL', 's', '0'), /read-only/)
  t.throws(() => ok(ro, 'OBJECT', 'ENCODING', 'k'), /read-only/, 'commands that are not read-only need the write right')
  t.doesNotThrow(() => ok(ro, 'PING'))
  t.doesNotThrow(() => ok(ro, 'ECHO', 'x'))
  t.throws(() => ok(wo, 'SET', 'k', 'v'), /no read right/, 'writes answer data: a write-only token cannot use the endpoint')
  t.doesNotThrow(() => ok(wo, 'PING'))
  t.doesNotThrow(() => ok(scoped, 'MSET', 'app:a', '1', 'app:b', '2'))
  t.throws(() => ok(scoped, 'MSET', 'app:a', '1', 'b', '2'), /names another key/)
  t.throws(() => ok(scoped, 'SCAN', '0'), /names no key/)
  t.throws(() => ok(scoped, 'DBSIZE'), /names no key/)
  t.throws(() => ok(scoped, 'PUBLISH', 'c', 'm'), /names no key/)
  t.throws(() => ok(scoped, 'EVAL_RO', 's', '1', 'app:a'), /scripts/)
  t.throws(() => ok(scoped, 'SORT', 'app:l', 'BY', 'weight_*'), /names another key/, 'SORT BY patterns are keys')
  t.doesNotThrow(() => ok(scoped, 'SORT', 'app:l', 'BY', 'app:w_*'))
  t.doesNotThrow(() => ok(scoped, 'PING'))
  t.throws(() => authorizeCommand(scoped, describe('GET', [Buffer.from('ap')], NO_DENY)), /names another key/, 'a key shorter than the prefix')
  t.doesNotThrow(() => authorizeCommand(scoped, describe('GET', [Buffer.concat([Buffer.from('app:'), Buffer.from([0xff])])], NO_DENY)), 'prefix compared as bytes')
})

t.test('request parsing', async t => {
  t.same(toCommand(['SET', 'k', 1.5, true, 10]), ['SET', 'k', '1.5', 'true', '10'], 'numbers and booleans become text')
  t.throws(() => toCommand([]), UpstashHttpError)
  t.throws(() => toCommand('GET k'), /non-empty JSON array/)
  t.throws(() => toCommand([1, 'k']), /start with the command name/)
  t.throws(() => toCommand(['SET', 'k', null]), /argument 2/)
  t.throws(() => toCommand(['SET', 'k', { a: 1 }]), /argument 2/)
  t.same(toCommands([['PING'], ['GET', 'k']], 2), [['PING'], ['GET', 'k']])
  t.throws(() => toCommands([['PING'], ['PING'], ['PING']], 2), /at most 2 commands/)
  t.throws(() => toCommands(['PING'], 2), /array of commands/)
  t.throws(() => toCommands([['PING'], []], 2), /command 2/)
  t.same(parseJsonBody(Buffer.from('["PING"]')), ['PING'])
  t.throws(() => parseJsonBody(Buffer.alloc(0)), { statusCode: 400, message: /JSON array/ })
  t.throws(() => parseJsonBody(Buffer.from('{')), /not valid JSON/)

  t.same(pathCommand('/set/a%2Fb/c%20d', undefined), ['set', 'a/b', 'c d'])
  t.same(pathCommand('/get/k/', undefined), ['get', 'k'], 'a trailing slash adds no argument')
  t.same(pathCommand('/set/k?EX=100&NX&_token=secret', Buffer.from('v')), ['set', 'k', Buffer.from('v'), 'EX', '100', 'NX'], 'body, then query parameters, _token skipped')
  t.same(pathCommand('/echo/', undefined), ['echo'])
  t.same(pathCommand('/set/k/', Buffer.alloc(0)), ['set', 'k'], 'an empty body adds nothing')
  t.throws(() => pathCommand('/get/%ZZ', undefined), /not valid percent-encoded/)
  t.equal(firstSegment('/GET/k?x=1'), 'GET')
  t.equal(firstSegment('/'), '')
  t.equal(firstSegment('/%ZZ'), '%ZZ')
  t.equal(queryToken('/get/k?_token=abc&x=1'), 'abc')
  t.equal(queryToken('/get/k'), undefined)
  t.equal(redactToken('/get/k?a=1&_token=abc&b=2'), '/get/k?a=1&_token=[redacted]&b=2')
  t.equal(redactToken('/get/k?_token=abc&_token=def'), '/get/k?_token=[redacted]&_token=[redacted]')
  t.equal(syncTokenOf('12345'), 12345)
  t.equal(syncTokenOf(''), undefined, 'the SDK\'s first, empty token')
  t.equal(syncTokenOf('abc'), undefined)
  t.equal(syncTokenOf(['7', '8']), 7)
})

t.test('answer encoding', async t => {
  t.equal(encodingOf('base64'), 'base64')
  t.equal(encodingOf('BASE64'), 'base64')
  t.equal(encodingOf(undefined), 'utf8')
  t.equal(encodeResult(Buffer.from('OK'), 'base64'), 'OK', 'a whole "OK" is sent as is (as Upstash does)')
  t.equal(encodeResult(Buffer.from('hello'), 'base64'), 'aGVsbG8=')
  t.equal(encodeResult(Buffer.from('hello'), 'utf8'), 'hello')
  t.same(encodeResult([Buffer.from('OK'), 3, null, [Buffer.from('x')]], 'base64'), ['T0s=', 3, null, ['eA==']], 'inside arrays every string is encoded')
  t.equal(encodeResult(null, 'base64'), null)
  t.equal(encodeResult(42, 'base64'), 42)
  t.equal(encodeResult(Buffer.from([0xff, 0x00]), 'base64'), '/wA=', 'binary survives base64')
})

t.test('UPSTASH_DENY_COMMANDS', async t => {
  const base = { REDIS_SENTINELS: '127.0.0.1:1,127.0.0.1:2,127.0.0.1:3' }
  const defaults = loadConfig(base).upstashDenyCommands
  for (const name of ['flushall', 'flushdb', 'config', 'shutdown', 'debug', 'keys', 'script', 'function', 'acl', 'module', 'info', 'migrate']) {
    t.ok(defaults.includes(name), `${name} is denied by default`)
  }
  t.equal(loadConfig(base).upstashMaxCommands, 1000)
  t.same(loadConfig({ ...base, UPSTASH_DENY_COMMANDS: 'Keys, flushall ,KEYS' }).upstashDenyCommands, ['keys', 'flushall'])
  t.same(loadConfig({ ...base, UPSTASH_DENY_COMMANDS: 'none' }).upstashDenyCommands, [])
  t.same(parseCommandList('X', 'none'), [])
  t.throws(() => loadConfig({ ...base, UPSTASH_DENY_COMMANDS: 'FLUSHAL' }), new ConfigError('Invalid environment variable UPSTASH_DENY_COMMANDS: "flushal" is not a Redis command (or use none)'))
})
