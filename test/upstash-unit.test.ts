/**
 * The Upstash endpoint's pieces without any server: request parsing, answer encoding,
 * configuration. (What a command is and who may run it: test/security/policy.test.ts.)
 */
import t from 'tap'
import { ConfigError, loadConfig, parseCommandList } from '../src/config.js'
import { encodeResult, encodingOf } from '../src/upstash/encoding.js'
import { firstSegment, parseJsonBody, pathCommand, syncTokenOf, toCommand, toCommands, UpstashHttpError } from '../src/upstash/protocol.js'

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
  t.same(loadConfig(base).upstashDenyCommands, [], 'nothing more is denied by default: the allowlist refuses what is dangerous')
  t.equal(loadConfig(base).upstashMaxCommands, 1000)
  t.same(loadConfig({ ...base, UPSTASH_DENY_COMMANDS: 'Keys, flushall ,KEYS' }).upstashDenyCommands, ['keys', 'flushall'])
  t.same(loadConfig({ ...base, UPSTASH_DENY_COMMANDS: 'none' }).upstashDenyCommands, [])
  t.same(parseCommandList('X', 'none'), [])
  t.same(parseCommandList('X', 'OBJECT|FREQ, hgetall'), ['object|freq', 'hgetall'], 'a subcommand alone')
  t.throws(() => loadConfig({ ...base, UPSTASH_DENY_COMMANDS: 'GET;DEL' }), new ConfigError('Invalid environment variable UPSTASH_DENY_COMMANDS: "get;del" is not a command name (or use none)'))
})
