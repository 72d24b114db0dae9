/**
 * The operations page (/ui) in a real Chromium against a real Sentinel topology:
 *  - the token flow: the event stream answers 401 without a token, 403 to a token without `o`,
 *    and streams to an `o` token; the page asks for the token, refuses one without `o`, keeps the
 *    good one in sessionStorage and never in a URL;
 *  - a SIGSTOPped replica shows as unhealthy (and healthy again after SIGCONT);
 *  - SENTINEL FAILOVER: within 5 s the page names the new master and the timeline shows the switch;
 *  - readable at 1280x800 and 390 px wide, keyboard reachable, no console error, no serious or
 *    critical axe-core violation. Screenshots go to test-artifacts/ui/ (gitignored).
 */
import { randomBytes } from 'node:crypto'
import type { Page } from 'playwright-core'
import t from 'tap'
import { MAX_PAGES } from '../src/ui/feed.js'
import { launchChromium } from './helpers/browser.js'
import { startInProcess, startProcess } from './helpers/gateway.js'
import { topologyFor } from './helpers/topology.js'
import { axeSerious, overflowAt, shot } from './helpers/ui-page.js'

const OPS = `ops-${randomBytes(12).toString('hex')}`
const RW = `rw-${randomBytes(12).toString('hex')}`

const browser = await launchChromium(t)
const topo = await topologyFor(t)
const gw = await startInProcess(t, topo, { AUTH_TOKENS: `${OPS}:o,${RW}:rw` })
const key = (port: number): string => `${topo.announceHost}:${port}`

/** A new tab on /ui with console errors, page errors, failed requests and CSP violations recorded. */
async function openPage (): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage()
  const problems: string[] = []
  page.on('console', m => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`) })
  page.on('pageerror', e => problems.push(`pageerror: ${e.message}`))
  page.on('requestfailed', r => { if (!r.url().endsWith('/ui/events')) problems.push(`requestfailed: ${r.url()} ${r.failure()?.errorText ?? ''}`) })
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', e => console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`))
  })
  await page.setViewportSize({ width: 1280, height: 800 })
  const res = await page.goto(`${gw.url}/ui`, { waitUntil: 'load' })
  if (res?.status() !== 200) throw new Error(`/ui answered ${res?.status() ?? 'nothing'}`)
  return { page, problems }
}

async function signIn (page: Page, token: string): Promise<void> {
  await page.locator('#token').waitFor({ state: 'visible' })
  await page.locator('#token').fill(token)
  await page.keyboard.press('Enter')
}

/** Requests through the gateway, so the traffic charts have something to show. */
async function traffic (n: number): Promise<void> {
  const auth = { authorization: `Bearer ${RW}` }
  for (let i = 0; i < n; i++) {
    const k = `ui:${process.pid}:${i % 5}`
    await fetch(`${gw.url}/kv/${k}`, { method: 'PUT', body: `v${i}`, headers: auth })
    await fetch(`${gw.url}/kv/${k}`, { headers: auth })
  }
  await fetch(`${gw.url}/kv/nope`, { headers: { authorization: 'Bearer wrong-token-123' } })
}

/** The first event of an event stream, as text. */
async function firstEvent (res: Response): Promise<string> {
  const reader = res.body!.getReader()
  let text = ''
  while (!text.includes('\n\n')) {
    const { value, done } = await reader.read()
    if (done) break
    text += new TextDecoder().decode(value)
  }
  return text
}

t.test('the event stream needs the ops right; the page serves without a token', async t => {
  const noToken = await fetch(`${gw.url}/ui/events`)
  t.equal(noToken.status, 401, 'no token: 401')
  const rw = await fetch(`${gw.url}/ui/events`, { headers: { authorization: `Bearer ${RW}` } })
  t.equal(rw.status, 403, 'a token without o: 403')
  t.equal(((await rw.json()) as { error: { code: string } }).error.code, 'GW_ERR_FORBIDDEN')
  const abort = new AbortController()
  const ops = await fetch(`${gw.url}/ui/events`, { headers: { authorization: `Bearer ${OPS}` }, signal: abort.signal })
  t.equal(ops.status, 200, `an o token: 200 ${ops.status === 200 ? '' : await ops.text()}`)
  t.match(ops.headers.get('content-type') ?? '', /^text\/event-stream/)
  const text = await firstEvent(ops)
  t.match(text, /^event: hello\ndata: \{/, 'the stream starts with hello (snapshot, timeline, traffic)')
  abort.abort()
  // At most MAX_PAGES streams per process: one more gets 503 (an o token cannot make it write without bound).
  // The responses are kept referenced until the end: undici cancels the body of a Response that is
  // garbage-collected unread, which would close a stream and free a place under the test's feet.
  const many = new AbortController()
  const open = await Promise.all(Array.from({ length: MAX_PAGES }, async () =>
    await fetch(`${gw.url}/ui/events`, { headers: { authorization: `Bearer ${OPS}` }, signal: many.signal })))
  t.ok(open.every(r => r.status === 200), `${MAX_PAGES} streams at once`)
  const extra = await fetch(`${gw.url}/ui/events`, { headers: { authorization: `Bearer ${OPS}` }, signal: many.signal })
  t.equal(extra.status, 503, 'one more: 503')
  // A stream answered by mistake is not read (it would never end); the abort below closes it.
  if (extra.status !== 200) t.equal(((await extra.json()) as { error: { code: string } }).error.code, 'GW_ERR_OVERLOADED')
  many.abort()
  await Promise.allSettled(open.map(async r => await r.body?.cancel()))
  // Closed pages free their places: a new one is accepted again (the server sees the closes shortly).
  let again = 0
  for (let i = 0; i < 50 && again !== 200; i++) {
    const ctl = new AbortController()
    again = (await fetch(`${gw.url}/ui/events`, { headers: { authorization: `Bearer ${OPS}` }, signal: ctl.signal })).status
    ctl.abort()
    if (again !== 200) await new Promise(resolve => setTimeout(resolve, 100))
  }
  t.equal(again, 200, 'after they closed, a page is accepted again')
  const page = await fetch(`${gw.url}/ui`)
  t.equal(page.status, 200, '/ui itself is public (it holds nothing; it asks for a token)')
  const csp = page.headers.get('content-security-policy') ?? ''
  t.match(csp, /script-src 'self'/)
  t.notMatch(csp, /unsafe-inline|unsafe-eval/, 'no unsafe-inline or unsafe-eval in the page CSP')
  t.equal((await fetch(`${gw.url}/ui/..%2Fpackage.json`)).status, 404, 'only the page\'s own files are served')
})

t.test('the page asks for a token, refuses one without o, keeps the good one out of the URL', async t => {
  const { page, problems } = await openPage()
  await page.locator('#login').waitFor({ state: 'visible' })
  t.equal(await page.locator('#status').textContent(), 'A token is needed')
  t.same(await axeSerious(page), [], 'axe-core: no serious or critical violation on the token form')
  await shot(page, 'token-form-1280.png')
  await signIn(page, RW)
  await page.locator('#login-error', { hasText: 'operations right' }).waitFor()
  t.pass('a token without o: the page says it lacks the operations right')
  t.equal(await page.evaluate(() => sessionStorage.getItem('skv-ops-token')), null, 'the refused token is not kept')
  await signIn(page, OPS)
  await page.locator('#live').waitFor({ state: 'visible' })
  t.equal(await page.evaluate(() => sessionStorage.getItem('skv-ops-token')), OPS, 'the token is kept in sessionStorage')
  t.notMatch(page.url(), /ops-|token/, 'the URL carries no token')
  await page.reload({ waitUntil: 'load' })
  await page.locator('#live').waitFor({ state: 'visible' })
  t.pass('after a reload the tab still has its token')
  const unexpected = problems.filter(p => !/\b403\b/.test(p))
  t.same(unexpected, [], 'no console error other than the refused token\'s 403')
  await page.close()
})

t.test('a frozen replica shows as unhealthy; failover: the page names the new master within 5 s', async t => {
  const { page, problems } = await openPage()
  await signIn(page, OPS)
  const master = await topo.master()
  await page.locator(`#master-name[data-master="${key(master.port)}"]`).waitFor()
  t.pass(`the page names the master ${key(master.port)}`)
  await traffic(40)

  const replica = topo.redis.find(r => r.port !== master.port && r.alive)!
  const row = (health: string): string => `#nodes-body tr[data-node="${key(replica.port)}"][data-health="${health}"]`
  await topo.kill(replica, 'SIGSTOP')
  try {
    const frozenAt = Date.now()
    await page.locator(row('unhealthy')).waitFor({ timeout: 15_000 })
    t.pass(`SIGSTOPped replica ${key(replica.port)} shown unhealthy after ${Date.now() - frozenAt} ms: ${await page.locator(row('unhealthy')).textContent()}`)
    await shot(page, 'frozen-replica-1280.png')
  } finally {
    await topo.kill(replica, 'SIGCONT')
  }
  const thawedAt = Date.now()
  await page.locator(row('healthy')).waitFor({ timeout: 20_000 })
  t.pass(`healthy again ${Date.now() - thawedAt} ms after SIGCONT`)
  await topo.waitConverged()
  t.comment(`converged ${Date.now() - thawedAt} ms after SIGCONT`)

  await traffic(20)
  const { to, ms: failoverMs } = await topo.failover()
  t.comment(`SENTINEL FAILOVER took ${failoverMs} ms`)
  const seenAt = Date.now()
  await page.locator(`#master-name[data-master="${key(to)}"]`).waitFor({ timeout: 5000 })
  await page.locator('#timeline li[data-kind="+switch-master"]').first().waitFor({ timeout: 5000 })
  const ms = Date.now() - seenAt
  t.ok(ms <= 5000, `the page names the new master ${key(to)} and shows +switch-master ${ms} ms after the sentinels agreed`)
  t.ok(await page.locator('#timeline li[data-kind="master-changed"]').count() >= 1, 'the gateway\'s own master-changed event is on the timeline')
  await traffic(10)
  await page.waitForTimeout(1500)
  await shot(page, 'failover-1280.png')
  t.ok(await page.locator('#charts figure').count() >= 6, 'the traffic charts are drawn')
  t.ok(await page.locator('#routes-body tr th', { hasText: '/kv/:key' }).count() >= 1, 'the route table lists /kv/:key')

  t.same(await axeSerious(page), [], 'axe-core: no serious or critical violation on the live page')

  // Keyboard: from a fresh load, the first Tab reaches the skip link, then every control.
  await page.reload({ waitUntil: 'load' })
  await page.locator('#live').waitFor({ state: 'visible' })
  await page.keyboard.press('Tab')
  t.equal(await page.evaluate(() => document.activeElement?.className), 'skip', 'the first Tab focuses the skip link')
  const focused = new Set<string>()
  for (let i = 0; i < 8; i++) {
    await page.keyboard.press('Tab')
    focused.add(await page.evaluate(() => document.activeElement?.id || document.activeElement?.getAttribute('aria-labelledby') || document.activeElement?.tagName || ''))
  }
  t.ok(focused.has('forget') && focused.has('timeline-log'), `Tab reaches the button and the timeline (${[...focused].join(', ')})`)

  const overflow = await overflowAt(page, 390)
  t.ok(overflow <= 1, `no horizontal scrolling at 390 px (${overflow} px over)`)
  await shot(page, 'failover-390.png')
  t.same(problems, [], 'no console error, CSP violation or failed request')
  await page.close()
})

t.test('WORKERS=2: the stream says which worker it reached; SIGTERM ends open streams and exits 0', async t => {
  const proc = await startProcess(t, topo, { WORKERS: '2', AUTH_TOKENS: `${OPS}:o` })
  const abort = new AbortController()
  const res = await fetch(`${proc.url}/ui/events`, { headers: { authorization: `Bearer ${OPS}` }, signal: abort.signal })
  t.equal(res.status, 200)
  const text = await firstEvent(res)
  const hello = JSON.parse(text.split('\n')[1]!.slice('data: '.length)) as { snapshot: { worker: { id: number | null; pid: number; of: number } } }
  t.equal(hello.snapshot.worker.of, 2, 'the page is told there are 2 workers')
  t.ok(typeof hello.snapshot.worker.id === 'number' && hello.snapshot.worker.pid !== proc.child.pid, `and which one it sees (worker ${hello.snapshot.worker.id}, pid ${hello.snapshot.worker.pid})`)
  const started = Date.now()
  const code = await proc.stop()
  t.equal(code, 0, 'SIGTERM with a page connected: exit 0')
  t.ok(Date.now() - started < 5000, `and promptly (${Date.now() - started} ms): the stream does not hold the shutdown`)
  abort.abort()
})
