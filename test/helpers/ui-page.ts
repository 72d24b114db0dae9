/**
 * For the operations page's browser tests: where screenshots go (test-artifacts/ui/, gitignored)
 * and axe-core's serious and critical violations on a page.
 */
import { mkdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Page } from 'playwright-core'

const root = (() => {
  const here = new URL('../../', import.meta.url)
  return fileURLToPath(here.href.endsWith('/dist/') ? new URL('../', here) : here)
})()

/** test-artifacts/ui/ of the repository (created on load). */
export const ARTIFACTS = path.join(root, 'test-artifacts', 'ui')
mkdirSync(ARTIFACTS, { recursive: true })

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js')

/** A full-page screenshot saved as test-artifacts/ui/<name>. */
export async function shot (page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(ARTIFACTS, name), fullPage: true })
}

/** axe-core's serious and critical violations on the page as it is now. */
export async function axeSerious (page: Page): Promise<string[]> {
  // Through the DevTools protocol: addScriptTag would add an inline script, which the page's CSP refuses.
  if (await page.evaluate(() => !('axe' in window))) await page.evaluate(readFileSync(AXE, 'utf8'))
  const result = await page.evaluate(async () => await (window as unknown as { axe: { run: () => Promise<{ violations: Array<{ id: string; impact: string; nodes: unknown[] }> }> } }).axe.run())
  return result.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => `${v.id} (${v.impact}, ${v.nodes.length} nodes)`)
}

/** Horizontal overflow in px (0: no horizontal scrolling) once the viewport is `width` px wide. */
export async function overflowAt (page: Page, width: number): Promise<number> {
  await page.setViewportSize({ width, height: 844 })
  await page.waitForTimeout(300)
  return await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)
}
