// Pure logic of the subscription streams: path parsing, rights, frames, limits, glob edge cases.
// (Pattern matching is also compared with Redis itself in test/pubsub.test.ts.)
import t from 'tap'
import { namesOf } from '../routes/subscribe.js'
import type { Principal, Right } from '../src/auth.js'
import { globMatch } from '../src/pubsub/glob.js'
import { StreamLimits } from '../src/pubsub/limits.js'
import { checkSubscription } from '../src/pubsub/rights.js'
import { field, messageFrame } from '../src/pubsub/stream.js'

const principal = (rights: Right[], prefix = ''): Principal => ({ name: 't', rights: new Set(rights), prefix })

t.test('names come from URL-decoded path segments, each 1 to KV_MAX_KEY_BYTES bytes', async (t) => {
  t.same(namesOf('/subscribe/a/b%2Fc/%C3%BC?_token=x', 'subscribe', 16), ['a', 'b/c', 'ü'])
  t.same(namesOf('/psubscribe/user:*/', 'psubscribe', 16), ['user:*'], 'a trailing slash is no name')
  t.throws(() => namesOf('/subscribe/', 'subscribe', 16), { statusCode: 400, message: /wrong number of arguments/ })
  t.throws(() => namesOf('/subscribe/a//b', 'subscribe', 16), { statusCode: 400, message: /1 to 16 bytes/ })
  t.throws(() => namesOf(`/subscribe/${'x'.repeat(17)}`, 'subscribe', 16), { statusCode: 400, message: /1 to 16 bytes/ })
  t.throws(() => namesOf('/subscribe/%E0%A4%A', 'subscribe', 16), { statusCode: 400, message: /percent-encoded/ })
  t.equal(namesOf(`/psubscribe/${Array.from({ length: 64 }, (_, i) => `p${i}*`).join('/')}`, 'psubscribe', 16).length, 64)
  t.throws(() => namesOf(`/psubscribe/${Array.from({ length: 65 }, (_, i) => `p${i}*`).join('/')}`, 'psubscribe', 16), { statusCode: 400, message: /at most 64 patterns/ })
})

t.test('subscribing needs p; never a reserved channel; a prefixed token stays inside its prefix', async (t) => {
  t.throws(() => checkSubscription(principal(['read', 'write']), 'subscribe', ['a']), { message: /^NOPERM this token has no pubsub right/ })
  t.doesNotThrow(() => checkSubscription(principal(['pubsub']), 'subscribe', ['a', '_x', '*']))
  for (const name of ['__sentinel__:hello', '__redis__:invalidate', '__keyspace@0__:k', '__']) {
    t.throws(() => checkSubscription(principal(['pubsub']), 'subscribe', ['ok', name]), { message: /reserved/ }, `subscribe ${name}`)
    t.throws(() => checkSubscription(principal(['pubsub']), 'psubscribe', [name]), { message: /reserved/ }, `psubscribe ${name}`)
  }
  // Patterns that MAY match reserved channels are allowed: the hub never delivers those messages.
  t.doesNotThrow(() => checkSubscription(principal(['pubsub']), 'psubscribe', ['*', '_*', '[_]*', '?_*']))
  const p = principal(['pubsub'], 'room:')
  t.doesNotThrow(() => checkSubscription(p, 'subscribe', ['room:1']))
  t.doesNotThrow(() => checkSubscription(p, 'psubscribe', ['room:*', 'room:[ab]?']))
  for (const name of ['other', 'roo*', '*', 'r?om:*', '[r]oom:*', 'room', '\\room:*']) {
    t.throws(() => checkSubscription(p, 'psubscribe', [name]), { message: /^NOPERM this token may only use channels starting with "room:"/ }, `psubscribe ${name}`)
  }
  t.throws(() => checkSubscription(p, 'subscribe', ['room:1', 'other']), { message: /another channel/ })
  t.throws(() => checkSubscription(principal(['pubsub'], 'ro*m:'), 'psubscribe', ['ro*m:*']), { message: /glob characters/ })
  t.doesNotThrow(() => checkSubscription(principal(['pubsub'], 'ro*m:'), 'subscribe', ['ro*m:1']), 'a channel is literal')
})

t.test('a pattern confined to a prefix never matches a channel outside it', async (t) => {
  const prefix = Buffer.from('room:')
  const patterns = ['room:*', 'room:?', 'room:[^a]*', 'room:\\*', 'room:[', 'room:[]*']
  const channels = ['room', 'room:', 'room:a', 'roomx', 'other', 'Room:a', 'room:*', '', 'xroom:a']
  for (const p of patterns) for (const c of channels) {
    if (globMatch(Buffer.from(p), Buffer.from(c))) t.ok(Buffer.from(c).subarray(0, prefix.length).equals(prefix), `${p} matches only inside the prefix (${c})`)
  }
})

t.test('glob edge cases, as Redis\'s stringmatchlen', async (t) => {
  const m = (p: string, c: string): boolean => globMatch(Buffer.from(p), Buffer.from(c))
  t.notOk(m('*', ''), 'as Redis: the loop never starts on an empty string')
  t.ok(m('a*', 'a'))
  t.notOk(m('a?', 'a'))
  t.ok(m('[a-c]', 'b'))
  t.ok(m('[c-a]', 'b'), 'reversed range')
  t.notOk(m('[^a-c]', 'b'))
  t.ok(m('[\\]]', ']'), 'escaped ] in a set')
  t.notOk(m('a[', 'a['), 'an unclosed, empty set matches nothing')
  t.ok(m('a[b', 'ab'), 'an unclosed set ends with the pattern')
  t.ok(m('\\*', '*'))
  t.notOk(m('\\*', 'x'))
  t.ok(m('*a*b*c*d*e*f*g*h*i*j*k*l*m*n*o*p*', `${'x'.repeat(200)}abcdefghijklmnop`), 'many stars, linear enough')
  t.notOk(m('*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b', 'a'.repeat(2000)), 'no exponential blow-up (skipLongerMatches)')
})

t.test('frames: one data line per event; a field with a line break becomes a JSON string', async (t) => {
  t.equal(field('plain, text'), 'plain, text')
  t.equal(field('a\nb'), '"a\\nb"')
  t.equal(field('a\rb'), '"a\\rb"')
  t.equal(messageFrame({ channel: Buffer.from('ch'), message: Buffer.from('hi') }).toString(), 'data: message,ch,hi\n\n')
  t.equal(messageFrame({ channel: Buffer.from('c\nh'), message: Buffer.from('x\r\ny'), pattern: 'p*' }).toString(), 'data: pmessage,p*,"c\\nh","x\\r\\ny"\n\n')
  const frame = messageFrame({ channel: Buffer.from('a\ndata: message,b,forged'), message: Buffer.from('z') }).toString()
  t.equal(frame.split('\n').filter(l => l.startsWith('data:')).length, 1, 'no forged data line')
})

t.test('stream limits: per token and per process, slots given back once', async (t) => {
  const l = new StreamLimits(2, 3)
  const a1 = l.acquire('a')
  const a2 = l.acquire('a')
  t.equal(l.acquire('a'), 'token')
  const b1 = l.acquire('b')
  t.equal(l.acquire('c'), 'process')
  t.equal(l.open, 3)
  if (typeof a1 === 'function') { a1(); a1() }
  t.equal(l.open, 2, 'a release counts once')
  t.type(l.acquire('a'), 'function')
  for (const r of [a2, b1]) if (typeof r === 'function') r()
})
