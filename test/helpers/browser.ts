/**
 * A real headless Chromium for tests (the Debian `chromium` package at /usr/bin/chromium, or
 * CHROMIUM_PATH), driven by playwright-core. Never downloads a browser: when Chromium is missing
 * the test fails with a message saying what to install.
 */
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage'
]
export const MISSING_CHROMIUM_MESSAGE = `Chromium not found at ${CHROMIUM_PATH}: install it with 'apt-get install -y chromium' ` +
  '(Debian; the browser test needs a real Chromium and never downloads one), or set CHROMIUM_PATH'

export interface Teardown { teardown(fn: () => unknown): void }

/**
 * A fresh Chromium profile (temp user-data-dir), closed and removed on teardown. `extraArgs`: more
 * command-line switches, e.g. `--host-resolver-rules=MAP kv.internal 127.0.0.1`.
 */
export async function launchChromium (t: Teardown, extraArgs: string[] = []): Promise<BrowserContext> {
  try {
    accessSync(CHROMIUM_PATH, constants.X_OK)
  } catch {
    throw new Error(MISSING_CHROMIUM_MESSAGE)
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'skv-chromium-'))
  let context: BrowserContext
  try {
    context = await chromium.launchPersistentContext(dir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [...CHROMIUM_ARGS, ...extraArgs],
      timeout: 30_000,
      env: { ...process.env, HOME: dir }
    })
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw new Error(`Chromium at ${CHROMIUM_PATH} did not start: ${err instanceof Error ? err.message : String(err)}`)
  }
  context.setDefaultTimeout(15_000)
  t.teardown(async () => {
    await context.close().catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  })
  return context
}

/** A tiny HTML page server on 127.0.0.1 (one port per call); closed on teardown. */
export async function servePage (t: Teardown, html: string): Promise<{ port: number }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
    res.end(html)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>(resolve => server.close(() => resolve()))
  })
  return { port: (server.address() as AddressInfo).port }
}

/**
 * A new tab that records what a reader would see go wrong: console errors and warnings, page
 * errors, failed requests and CSP violations (each also logged as a console error).
 */
export async function watchedPage (context: BrowserContext): Promise<{ page: Page; problems: string[] }> {
  const page = await context.newPage()
  const problems: string[] = []
  page.on('console', m => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`) })
  page.on('pageerror', e => problems.push(`pageerror: ${e.message}`))
  page.on('requestfailed', r => problems.push(`requestfailed: ${r.method()} ${r.url()} ${r.failure()?.errorText ?? ''}`))
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', e => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI} (sample: ${e.sample}; policy: ${e.originalPolicy})`)
    })
  })
  return { page, problems }
}
