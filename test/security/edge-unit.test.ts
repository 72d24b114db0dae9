/**
 * The pure logic of the HTTP edge, without a server (the same rules are replayed end to end in
 * the other edge-*.test.ts files):
 *  - every query spelling that authenticates as `_token` is redacted from a logged URL (a property
 *    over random percent-encodings of the name), and so are look-alikes that do not authenticate;
 *  - the cross-site verdict for each Sec-Fetch-Site / Origin combination a browser can send;
 *  - the 401 counter: blocks at AUTH_FAILURES_MAX, for the window only, per address (IPv6 per /56),
 *    bounded in memory;
 *  - TRUST_PROXY hop counts trust exactly that many hops.
 */
import fc from 'fast-check'
import t from 'tap'
import { trustProxyOption } from '../../src/app.js'
import { queryToken } from '../../src/auth.js'
import { CENSOR, redactUrl } from '../../src/logger.js'
import { AuthFailures, clientAddress } from '../../src/plugins/auth-failures.js'
import { allowedOrigins, isForeignBrowserRequest } from '../../src/plugins/cross-site.js'

const SECRET = 'S3cr3t-t0ken-value'

t.test('every spelling of _token that authenticates is redacted from the logged URL', async t => {
  const spellings = ['_token', '%5Ftoken', '%5ftoken', '_tok%65n', '%5F%74%6F%6B%65%6E', '_%74oken']
  for (const name of spellings) {
    for (const url of [`/get/k?${name}=${SECRET}`, `/get/k?a=1&${name}=${SECRET}&b=2`, `/get/k??${name}=${SECRET}`]) {
      t.equal(queryToken(url), SECRET, `${url} authenticates with the token`)
      const logged = redactUrl(url)
      t.notOk(logged.includes(SECRET), `${url} is logged as ${logged}`)
      t.ok(logged.includes(CENSOR), `${url}: the value is replaced by ${CENSOR}`)
    }
  }
  // Random percent-encodings (either case of hex digits) of each letter of the name.
  const encodedName = fc.tuple(...[...'_token'].map(c => fc.constantFrom(c, `%${c.charCodeAt(0).toString(16)}`, `%${c.charCodeAt(0).toString(16).toUpperCase()}`)))
    .map(parts => parts.join(''))
  fc.assert(fc.property(encodedName, fc.constantFrom('', 'a=1&', 'x&'), fc.constantFrom('', '&b=2'), (name, before, after) => {
    const url = `/set/k/v?${before}${name}=${SECRET}${after}`
    return queryToken(url) === SECRET && !redactUrl(url).includes(SECRET)
  }), { numRuns: 300 })
})

t.test('look-alikes that do not authenticate are redacted too; other parameters are kept', async t => {
  for (const name of ['_TOKEN', '_Token', 'token', 'access_token', '%5FTOKEN', '_tok%45n', 'auth', 'password', '_token%20', '_to+ken']) {
    const url = `/kv/k?${name}=${SECRET}&ttl=5`
    t.notOk(redactUrl(url).includes(SECRET), `${name}: redacted (${redactUrl(url)})`)
    t.ok(redactUrl(url).endsWith('&ttl=5'), `${name}: the other parameters are kept`)
  }
  t.equal(redactUrl('/kv/k?ttl=5&consistency=strong'), '/kv/k?ttl=5&consistency=strong', 'nothing secret: unchanged')
  const noQuery = '/kv/some-key'
  t.equal(redactUrl(noQuery), noQuery, 'no query: the same string')
  t.equal(redactUrl('/kv/k?%=1&a%ZZ=2&_token'), '/kv/k?%=1&a%ZZ=2&_token', 'malformed percent-encoding does not throw; a name without a value has nothing to hide')
})

t.test('cross-site verdict: what a browser sends, and what curl sends', async t => {
  const allowed = allowedOrigins(['https://app.example.com/', 'HTTP://Admin.Example.com'])
  const host = 'kv.example.com'
  const cases: Array<[string | undefined, string | undefined, boolean, string]> = [
    [undefined, undefined, false, 'curl / a server: neither header'],
    ['same-origin', 'https://kv.example.com', false, 'our own page'],
    ['none', undefined, false, 'the user typed the URL'],
    ['cross-site', undefined, true, '<img> or a navigation from another site (no Origin)'],
    ['cross-site', 'https://evil.example', true, 'a form POST or no-cors fetch from another site'],
    ['same-site', 'https://other.example.com', true, 'another subdomain or port is another origin'],
    ['cross-site', 'https://app.example.com', false, 'an allowed origin'],
    ['cross-site', 'http://admin.example.com', false, 'an allowed origin (normalised case and slash)'],
    ['cross-site', 'null', true, 'an opaque origin (sandboxed frame, file://)'],
    [undefined, 'https://evil.example', true, 'an older browser (no Sec-Fetch-Site) on another site'],
    [undefined, 'https://kv.example.com', false, 'an older browser on our own host'],
    [undefined, 'http://kv.example.com', false, 'our own host behind a TLS proxy (scheme differs)'],
    [undefined, 'https://kv.example.com.evil.example', true, 'a host that only starts like ours'],
    ['garbage', 'https://evil.example', true, 'an unknown Sec-Fetch-Site value falls back to Origin']
  ]
  for (const [site, origin, refused, what] of cases) {
    t.equal(isForeignBrowserRequest(site, origin, host, allowed), refused, `${what}: ${refused ? 'refused' : 'allowed'}`)
  }
  t.equal(isForeignBrowserRequest('cross-site', 'https://evil.example', host, allowedOrigins(['*'])), false, 'CORS_ORIGINS=*: every origin is allowed')
})

t.test('401 counter: AUTH_FAILURES_MAX per window and address', async t => {
  const f = new AuthFailures(3, 10_000)
  const now = 1_000_000
  t.equal(f.retryAfter('10.0.0.1', now), 0, 'nobody failed yet')
  for (let i = 0; i < 3; i++) {
    t.equal(f.retryAfter('10.0.0.1', now + i), 0, `failure ${i + 1} is still answered (not blocked before it)`)
    f.record('10.0.0.1', now + i)
  }
  t.equal(f.retryAfter('10.0.0.1', now + 5), 10, 'after 3 failures: blocked for the rest of the window (10 s)')
  t.equal(f.retryAfter('10.0.0.1', now + 9_500), 1, 'Retry-After counts down, never 0 while blocked')
  t.equal(f.retryAfter('10.0.0.2', now + 5), 0, 'another address is not blocked')
  t.equal(f.retryAfter('10.0.0.1', now + 10_000), 0, 'the window ended: allowed again')
  f.record('10.0.0.1', now + 10_001)
  t.equal(f.retryAfter('10.0.0.1', now + 10_002), 0, 'a new window starts at 1')

  const v6 = new AuthFailures(2, 10_000)
  v6.record('2001:db8:1:2::1', now)
  v6.record('2001:db8:1:ff::9', now)
  t.ok(v6.retryAfter('2001:db8:1:3::5', now) > 0, 'IPv6: one /56 is one client')
  t.equal(v6.retryAfter('2001:db8:2::1', now), 0, 'another /56 is another client')
  t.equal(clientAddress('::ffff:10.1.2.3'), '10.1.2.3', 'IPv4-mapped IPv6 counts as the IPv4 address')

  const off = new AuthFailures(0, 10_000)
  for (let i = 0; i < 100; i++) off.record('10.0.0.1', now)
  t.equal(off.retryAfter('10.0.0.1', now), 0, 'AUTH_FAILURES_MAX=0: never blocks')
  t.equal(off.size, 0, 'and counts nothing')

  const small = new AuthFailures(1, 10_000, 100)
  for (let i = 0; i < 1000; i++) small.record(`10.1.${i >> 8}.${i & 255}`, now + i)
  t.ok(small.size <= 100, `memory bounded: ${small.size} addresses tracked of 1000 seen`)
  t.ok(small.retryAfter('10.1.3.231', now + 1000) > 0, 'the most recent address is still blocked')
  small.record('10.9.9.9', now + 20_000)
  t.equal(small.size, 1, 'expired entries are swept once a window has passed')
})

t.test('TRUST_PROXY: a hop count trusts exactly that many hops', async t => {
  const one = trustProxyOption(1) as (addr: string, hop: number) => boolean
  t.equal(one('127.0.0.1', 0), true, 'the socket peer (the proxy) is trusted')
  t.equal(one('10.0.0.1', 1), false, 'the hop before it is the client')
  t.equal(trustProxyOption(false), false)
  t.same(trustProxyOption(['10.0.0.0/8']), ['10.0.0.0/8'])
})
