/**
 * /docs as a reader meets it: real Chromium (playwright-core), the gateway reached by a host name
 * (`kv.internal`, mapped to loopback with --host-resolver-rules, as in a compose or VPC network),
 * tokens configured, over plain HTTP and over HTTPS (a TLS-terminating proxy in front, as in
 * production). The page renders with no console error, no CSP violation and no failed request;
 * Authorize (bearer) then "Try it out" of PUT, GET and DELETE /kv/{key} reach the server that
 * served the page, and the master holds what the page wrote.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import { randomBytes } from 'node:crypto'
import type { Page } from 'playwright-core'
import t from 'tap'
import { launchChromium, watchedPage } from './helpers/browser.js'
import { startInProcess } from './helpers/gateway.js'
import { topologyFor } from './helpers/topology.js'

const HOST = 'kv.internal'
const TOKEN = `docs-${randomBytes(12).toString('hex')}`
const P = `docs:${process.pid}:${Date.now()}:`

const browser = await launchChromium(t, [`--host-resolver-rules=MAP ${HOST} 127.0.0.1`, '--ignore-certificate-errors'])
const topo = await topologyFor(t)
const gw = await startInProcess(t, topo, { AUTH_TOKENS: `${TOKEN}:rw` })
const gwPort = Number(new URL(gw.url).port)

/** A TLS terminator in front of the gateway (self-signed certificate for kv.internal, made with openssl). */
async function tlsProxy (): Promise<number> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'skv-docs-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${HOST}`,
    '-addext', `subjectAltName=DNS:${HOST}`, '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' })
  const sockets = new Set<net.Socket>()
  const server = tls.createServer({ key: readFileSync(path.join(dir, 'key.pem')), cert: readFileSync(path.join(dir, 'cert.pem')) }, (client) => {
    const upstream = net.connect(gwPort, '127.0.0.1')
    for (const s of [client, upstream]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => s.destroy()) }
    client.pipe(upstream).pipe(client)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>(resolve => server.close(() => resolve()))
  })
  return (server.address() as net.AddressInfo).port
}

async function onMaster (key: string): Promise<string | null> {
  const c = topo.client((await topo.masterProc()).port)
  try { return await c.get(key) } finally { await c.quit() }
}

/** Opens /docs with every console message, page error, failed request and CSP violation recorded. */
async function openDocs (origin: string): Promise<{ page: Page; problems: string[]; csp: string }> {
  const { page, problems } = await watchedPage(browser)
  const res = await page.goto(`${origin}/docs`, { waitUntil: 'load' })
  if (res === null || res.status() !== 200) throw new Error(`${origin}/docs answered ${res?.status() ?? 'nothing'}`)
  await page.locator('#operations-kv-getValue').waitFor({ state: 'visible', timeout: 15_000 })
  return { page, problems, csp: (await res.headerValue('content-security-policy')) ?? '' }
}

/** Authorize: the bearer token into swagger-ui's dialog. */
async function authorize (page: Page): Promise<void> {
  await page.locator('.auth-wrapper button.authorize').click()
  const dialog = page.locator('.dialog-ux .modal-ux')
  const bearer = dialog.locator('.auth-container').filter({ hasText: 'bearer' })
  await bearer.locator('input').fill(TOKEN)
  await bearer.locator('button.authorize').click()
  await dialog.locator('button.btn-done').first().click()
}

/** "Try it out" of one operation: fills the key (and body), executes, answers status and body text. */
async function tryItOut (page: Page, operationId: string, key: string, body?: string): Promise<{ status: string; body: string; url: string }> {
  const op = page.locator(`#operations-kv-${operationId}`)
  if (!(await op.locator('.try-out__btn').isVisible())) await op.locator('.opblock-summary').click()
  const tryOut = op.locator('.try-out__btn')
  if ((await tryOut.textContent())?.includes('Try it out') === true) await tryOut.click()
  await op.locator('tr[data-param-name="key"] input').fill(key)
  if (body !== undefined) await op.locator('.body-param__text').fill(body)
  await op.locator('button.execute').click()
  const row = op.locator('.live-responses-table .response').first()
  await row.waitFor({ state: 'visible', timeout: 15_000 })
  const url = (await op.locator('.request-url pre').textContent()) ?? ''
  const described = row.locator('.response-col_description')
  // A JSON answer is shown as text; raw bytes (application/octet-stream) as a download link to a blob.
  const link = described.locator('a[href^="blob:"]')
  let text: string
  if (await link.count() > 0) {
    // What the reader gets by clicking it: the downloaded file.
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()])
    text = readFileSync(await download.path()).toString('utf8')
  } else {
    // Rendered with the status row; none for a 204.
    const pre = described.locator('pre')
    text = await pre.count() > 0 ? (await pre.first().textContent()) ?? '' : ''
  }
  const status = ((await row.locator('.response-col_status').textContent()) ?? '').trim()
  await op.locator('button.btn-clear').click().catch(() => {})
  return { status, body: text, url }
}

for (const scheme of ['http', 'https'] as const) {
  t.test(`/docs by host name over ${scheme.toUpperCase()}: renders clean, Authorize and Try it out work`, async t => {
    const origin = scheme === 'http' ? `http://${HOST}:${gwPort}` : `https://${HOST}:${await tlsProxy()}`
    const { page, problems, csp } = await openDocs(origin)
    t.match(csp, /default-src 'self'/, `/docs has its own CSP (${csp})`)
    t.notMatch(csp, /upgrade-insecure-requests/, 'the /docs CSP does not upgrade requests to https')
    t.notMatch(csp, /unsafe-inline|unsafe-eval/, 'the /docs CSP allows no inline script or style')
    t.ok(await page.locator('.auth-wrapper button.authorize').isVisible(), 'the Authorize button is there (bearer security scheme)')
    t.same(await page.locator('.servers select option').evaluateAll(os => os.map(o => (o as HTMLOptionElement).value)), ['/'], 'the one server offered is relative: the gateway that served the page')

    await authorize(page)
    const key = `${P}${scheme}:docs key/ü`
    const value = `written from /docs over ${scheme} ✓`
    const put = await tryItOut(page, 'putValue', key, value)
    t.equal(put.status, '201', `PUT from "Try it out": 201 (body: ${put.body.slice(0, 200)})`)
    t.ok(put.url.startsWith(`${origin}/kv/`), `sent to the server that served the page (${put.url})`)
    t.equal(await onMaster(key), value, 'the master holds the value, byte for byte')
    const get = await tryItOut(page, 'getValue', key)
    t.equal(get.status, '200', 'GET from "Try it out": 200')
    t.equal(get.body, value, 'GET answers the value (swagger-ui offers it as a download)')
    const del = await tryItOut(page, 'deleteValue', key)
    t.equal(del.status, '204', 'DELETE from "Try it out": 204')
    t.equal(await onMaster(key), null, 'deleted on the master')

    t.same(problems, [], 'no console error or warning, CSP violation, page error or failed request')
    await page.close()
  })
}

t.test('without Authorize, "Try it out" answers 401 and writes nothing', async t => {
  const { page } = await openDocs(`http://${HOST}:${gwPort}`)
  const key = `${P}unauthorized`
  const put = await tryItOut(page, 'putValue', key, 'x')
  t.equal(put.status, '401', 'no token sent: 401')
  t.equal(await onMaster(key), null, 'nothing written')
  await page.close()
})
