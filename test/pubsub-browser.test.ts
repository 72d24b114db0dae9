/**
 * Subscription streams from a real browser (headless Chromium via playwright-core) with the
 * standard EventSource, against a real Sentinel topology: a page on an allowed origin
 * (CORS_ORIGINS) subscribes with the token as `?_token=` (EventSource cannot send headers) and
 * receives the confirmation and the messages published on the master, through a replica; a page
 * on another origin gets nothing (the browser blocks the stream: no CORS header for it).
 */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { launchChromium, servePage, watchedPage } from './helpers/browser.js'
import { startInProcess } from './helpers/gateway.js'
import { topologyFor } from './helpers/topology.js'

const TOKEN = `browser-pubsub-${randomBytes(12).toString('hex')}`
const browser = await launchChromium(t)
const topo = await topologyFor(t)
const page = '<!doctype html><html><head><meta charset="utf-8"><title>app</title></head><body><p>app</p></body></html>'
const allowed = await servePage(t, page)
const other = await servePage(t, page)
const allowedOrigin = `http://localhost:${allowed.port}`
const gw = await startInProcess(t, topo, { EVENT_LOOP_MAX_DELAY_MS: '0', CORS_ORIGINS: allowedOrigin, AUTH_TOKENS: `${TOKEN}:p` })
const master = topo.client((await topo.masterProc()).port)
t.teardown(() => master.disconnect())

/** Opens an EventSource in the page; its events land in window.events, errors in window.errors. */
const subscribeIn = async (origin: string, path: string): Promise<Awaited<ReturnType<typeof watchedPage>>> => {
  const w = await watchedPage(browser)
  await w.page.goto(`${origin}/`, { waitUntil: 'load' })
  await w.page.evaluate((src) => {
    const win = window as unknown as { events: string[]; errors: number; es: EventSource }
    win.events = []
    win.errors = 0
    win.es = new EventSource(src)
    win.es.onmessage = (e: MessageEvent<string>) => { win.events.push(e.data) }
    win.es.onerror = () => { win.errors++ }
  }, `${gw.url}${path}`)
  return w
}
const eventsOf = async (w: Awaited<ReturnType<typeof watchedPage>>): Promise<{ events: string[]; errors: number }> =>
  await w.page.evaluate(() => { const win = window as unknown as { events: string[]; errors: number }; return { events: win.events, errors: win.errors } })

t.test('EventSource on an allowed origin receives the subscription and its messages', async (t) => {
  const w = await subscribeIn(allowedOrigin, `/psubscribe/${encodeURIComponent('news:*')}?_token=${TOKEN}`)
  await w.page.waitForFunction(() => (window as unknown as { events: string[] }).events.length >= 1, undefined, { timeout: 10_000 })
  await master.publish('news:1', 'héllo, browser')
  await master.publish('other', 'not for this page')
  await master.publish('news:2', '{"json":true}')
  await w.page.waitForFunction(() => (window as unknown as { events: string[] }).events.length >= 3, undefined, { timeout: 10_000 })
  const { events, errors } = await eventsOf(w)
  t.same(events, ['psubscribe,news:*,1', 'pmessage,news:*,news:1,héllo, browser', 'pmessage,news:*,news:2,{"json":true}'], 'the confirmation, then the matching messages, in the SDK\'s format')
  t.equal(errors, 0, 'no error event')
  t.same(w.problems, [], 'no console error, CSP violation or failed request')
  await w.page.evaluate(() => { (window as unknown as { es: EventSource }).es.close() })
  await w.page.close()
})

t.test('EventSource on another origin gets nothing', async (t) => {
  const w = await subscribeIn(`http://localhost:${other.port}`, `/subscribe/news:1?_token=${TOKEN}`)
  await w.page.waitForFunction(() => (window as unknown as { errors: number }).errors >= 1, undefined, { timeout: 10_000 })
  await master.publish('news:1', 'secret')
  await new Promise(resolve => setTimeout(resolve, 300))
  const { events } = await eventsOf(w)
  t.same(events, [], 'the browser let no event through')
  t.ok(w.problems.some(p => /CORS|Access-Control-Allow-Origin/i.test(p)), 'the browser reports the CORS block')
  await w.page.evaluate(() => { (window as unknown as { es: EventSource }).es.close() })
  await w.page.close()
})
