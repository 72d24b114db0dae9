/**
 * The gateway from a real browser (headless Chromium via playwright-core), against one real
 * Sentinel topology:
 *  - a page on an allowed origin (CORS_ORIGINS=http://localhost:<p1>) PUTs then GETs with a bearer
 *    token and reads the exposed headers (ETag, X-Sync-Token, X-Served-By, ...) from JS;
 *  - the same fetch from a page on another origin (http://localhost:<p2>) is blocked by the browser
 *    (fetch rejects with TypeError) and the value is not written (the preflight stopped the PUT);
 *  - /docs renders in the browser and lists the KV routes (swagger-ui under helmet's CSP).
 */
import { createHash, randomBytes } from 'node:crypto'
import type { Page } from 'playwright-core'
import t from 'tap'
import { launchChromium, servePage, watchedPage } from './helpers/browser.js'
import { startInProcess } from './helpers/gateway.js'
import { topologyFor } from './helpers/topology.js'

const TOKEN = `browser-${randomBytes(12).toString('hex')}`
const RO_TOKEN = `reader-${randomBytes(12).toString('hex')}`
const P = `browser:${process.pid}:${Date.now()}:`
const sha1 = (s: string): string => createHash('sha1').update(s).digest('hex')

// The browser first: without Chromium this file fails at once, with what to install.
const browser = await launchChromium(t)
/** Load shedding off: on a loaded CI machine a CPU-starved test process would answer 503 (overloaded), which is not what this file tests. */
const NO_SHEDDING = { EVENT_LOOP_MAX_DELAY_MS: '0' }
const topo = await topologyFor(t)
const page = '<!doctype html><html><head><meta charset="utf-8"><title>app</title></head><body><p>app</p></body></html>'
const allowed = await servePage(t, page)
const other = await servePage(t, page)
const allowedOrigin = `http://localhost:${allowed.port}`
const otherOrigin = `http://localhost:${other.port}`
const gw = await startInProcess(t, topo, { ...NO_SHEDDING, CORS_ORIGINS: allowedOrigin, AUTH_TOKENS: `${TOKEN}:rw,${RO_TOKEN}:r` })

async function onMaster (key: string): Promise<string | null> {
  const c = topo.client((await topo.masterProc()).port)
  try { return await c.get(key) } finally { await c.quit() }
}

/** A new tab on `origin`, with console errors and CSP violations recorded. */
async function open (origin: string, url = `${origin}/`): Promise<{ page: Page; problems: string[] }> {
  const { page: p, problems } = await watchedPage(browser)
  const res = await p.goto(url, { waitUntil: 'load' })
  if (res === null || res.status() !== 200) throw new Error(`${url} answered ${res?.status() ?? 'nothing'}`)
  return { page: p, problems }
}

interface Exchange {
  put?: { status: number; etag: string | null; sync: string | null; servedBy: string | null; location: string | null; requestId: string | null; body: string }
  get?: { status: number; etag: string | null; servedBy: string | null; sync: string | null; text: string }
  error?: { name: string; message: string }
}

/** In the page: PUT `value` then GET it back with the bearer token, reading the exposed headers. */
async function putThenGet (p: Page, key: string, value: string, token = TOKEN): Promise<Exchange> {
  return await p.evaluate(async ({ gw, key, value, token }) => {
    const url = `${gw}/kv/${encodeURIComponent(key)}`
    const out: Exchange = {}
    try {
      const put = await fetch(url, { method: 'PUT', body: value, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' } })
      out.put = {
        status: put.status,
        etag: put.headers.get('etag'),
        sync: put.headers.get('x-sync-token'),
        servedBy: put.headers.get('x-served-by'),
        location: put.headers.get('location'),
        requestId: put.headers.get('x-request-id'),
        body: await put.text()
      }
      const get = await fetch(url, { headers: { authorization: `Bearer ${token}`, ...(out.put.sync === null ? {} : { 'x-sync-token': out.put.sync }) } })
      out.get = { status: get.status, etag: get.headers.get('etag'), servedBy: get.headers.get('x-served-by'), sync: get.headers.get('x-sync-token'), text: await get.text() }
    } catch (err) {
      out.error = { name: (err as Error).name, message: (err as Error).message }
    }
    return out
  }, { gw: gw.url, key, value, token })
}

t.test('a page on an allowed origin: PUT then GET with a token, exposed headers readable', async t => {
  const { page: p, problems } = await open(allowedOrigin)
  t.equal(await p.evaluate(() => location.origin), allowedOrigin, 'the page runs on the allowed origin')
  const key = `${P}allowed`
  const value = `from the browser ✓ ${randomBytes(4).toString('hex')}`
  const r = await putThenGet(p, key, value)
  t.same(r.error, undefined, 'no fetch failed')
  t.equal(r.put?.status, 201, 'PUT from the browser: 201')
  t.equal(r.put?.etag, `"${sha1(value)}"`, 'ETag readable from JS: the SHA-1 of the value')
  t.match(r.put?.sync ?? '', /^[0-9]+$/, 'X-Sync-Token readable from JS')
  t.equal(JSON.parse(r.put?.body ?? '{}').syncToken, r.put?.sync, 'X-Sync-Token equals the body syncToken')
  t.equal(r.put?.location, `/kv/${encodeURIComponent(key)}`, 'Location readable from JS')
  t.match(r.put?.requestId ?? '', /\S/, 'X-Request-Id readable from JS')
  t.equal(r.get?.status, 200, 'GET from the browser: 200')
  t.equal(r.get?.text, value, 'GET answers the value')
  t.equal(r.get?.etag, r.put?.etag, 'GET ETag readable and equal to the PUT ETag')
  t.match(r.get?.servedBy ?? '', /^(replica|master)$/, `X-Served-By readable from JS (${r.get?.servedBy})`)
  t.equal(await onMaster(key), value, 'the master holds the value')

  const more = await p.evaluate(async ({ gw, key, token, etag }) => {
    const url = `${gw}/kv/${encodeURIComponent(key)}`
    const auth = { authorization: `Bearer ${token}` }
    const cas = await fetch(url, { method: 'PUT', body: 'cas', headers: { ...auth, 'if-match': etag } })
    const stale = await fetch(url, { method: 'PUT', body: 'stale', headers: { ...auth, 'if-match': etag } })
    const notModified = await fetch(url, { headers: { ...auth, 'if-none-match': `"${'0'.repeat(40)}"` } })
    const noToken = await fetch(url)
    const batch = await fetch(`${gw}/kv/_batch`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ ops: [{ op: 'get', key }] }) })
    const del = await fetch(url, { method: 'DELETE', headers: auth })
    return {
      cas: cas.status,
      stale: stale.status,
      staleCode: ((await stale.json()) as { error: { code: string } }).error.code,
      other: notModified.status,
      noToken: noToken.status,
      challenge: noToken.headers.get('www-authenticate'),
      batch: (await batch.json()) as { results: Array<{ status: number; value?: string }> },
      del: del.status
    }
  }, { gw: gw.url, key, token: TOKEN, etag: r.put?.etag ?? '' })
  t.equal(more.cas, 200, 'If-Match compare-and-set from the browser: 200')
  t.equal(more.stale, 412, 'a stale If-Match from the browser: 412, readable')
  t.equal(more.staleCode, 'GW_ERR_PRECONDITION_FAILED')
  t.equal(more.other, 200, 'If-None-Match with another ETag: 200')
  t.equal(more.noToken, 401, 'no token: 401 readable from JS')
  t.match(more.challenge ?? '', /^Bearer/, 'WWW-Authenticate readable from JS')
  t.same(more.batch.results.map(x => [x.status, x.value]), [[200, 'cas']], 'batch (JSON, preflighted) from the browser')
  t.equal(more.del, 204, 'DELETE from the browser: 204')
  t.equal(await onMaster(key), null, 'deleted on the master')
  t.same(problems.filter(x => !/401|412/.test(x)), [], 'no console error, CSP violation or failed request on the allowed origin')
  await p.close()
})

t.test('a page on another origin: the browser blocks the fetch, nothing is written', async t => {
  const { page: p, problems } = await open(otherOrigin)
  t.equal(await p.evaluate(() => location.origin), otherOrigin, 'the page runs on an origin not in CORS_ORIGINS')
  const key = `${P}blocked`
  const r = await putThenGet(p, key, 'must not be written')
  t.equal(r.put, undefined, 'the PUT never answered to the page')
  t.equal(r.error?.name, 'TypeError', `fetch rejects with TypeError (${r.error?.message})`)
  t.equal(await onMaster(key), null, 'the value was not written on the master (the preflight stopped the PUT)')
  t.ok(problems.some(x => /CORS|Access-Control/i.test(x)), 'the browser reports a CORS block')

  const existing = `${P}existing`
  const c = topo.client((await topo.masterProc()).port)
  try { await c.set(existing, 'secret value') } finally { await c.quit() }
  const read = await p.evaluate(async ({ gw, key, token }) => {
    try {
      const r = await fetch(`${gw}/kv/${encodeURIComponent(key)}`, { headers: { authorization: `Bearer ${token}` } })
      return { status: r.status, text: await r.text() }
    } catch (err) { return { error: (err as Error).name } }
  }, { gw: gw.url, key: existing, token: RO_TOKEN })
  t.same(read, { error: 'TypeError' }, 'a GET of an existing key from the other origin is blocked too')
  const simple = await p.evaluate(async ({ gw, key }) => {
    try {
      // A "simple" request (no preflight): it reaches the gateway, but the page may not read the answer.
      const r = await fetch(`${gw}/kv/_batch`, { method: 'POST', body: JSON.stringify({ ops: [{ op: 'put', key, value: 'x' }] }), headers: { 'content-type': 'text/plain' } })
      return { status: r.status }
    } catch (err) { return { error: (err as Error).name } }
  }, { gw: gw.url, key: `${P}simple` })
  t.same(simple, { error: 'TypeError' }, 'a simple cross-origin POST: the answer is not readable')
  t.equal(await onMaster(`${P}simple`), null, 'and it wrote nothing')
  await p.close()
})

t.test('/docs renders in the browser and lists the KV routes', async t => {
  const { page: p, problems } = await open(gw.url, `${gw.url}/docs`)
  let rendered = true
  try {
    await p.locator('.opblock-summary-path', { hasText: '/kv/{key}' }).first().waitFor({ state: 'visible', timeout: 15_000 })
  } catch {
    rendered = false
  }
  const headers = (await (await p.request.get(`${gw.url}/docs/`)).headersArray()).filter(h => /content-security-policy|x-frame-options|cross-origin/i.test(h.name))
  t.ok(rendered, `swagger-ui rendered /kv/{key} (problems: ${JSON.stringify(problems)}; headers: ${JSON.stringify(headers)})`)
  const paths = await p.locator('.opblock-summary-path').allTextContents()
  const methods = await p.locator('.opblock-summary-method').allTextContents()
  const ops = paths.map((x, i) => `${methods[i] ?? '?'} ${x.replace(/\u200b/g, '').trim()}`)
  for (const op of ['GET /kv/{key}', 'PUT /kv/{key}', 'DELETE /kv/{key}', 'POST /kv/_batch']) {
    t.ok(ops.includes(op), `the docs list ${op} (listed: ${ops.join(', ')})`)
  }
  // src/plugins/docs.ts: swagger-ui's BaseLayout (no top bar, whose logo SVG carried an inline <style>).
  const csp = problems.filter(x => /CSP|Content Security Policy|Refused/i.test(x))
  t.same(csp, [], 'no CSP violation on /docs')
  t.same(problems.filter(x => /requestfailed|pageerror/.test(x)), [], 'no failed request or page error on /docs')
  await p.close()
})
