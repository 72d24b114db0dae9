/**
 * `npm run ui:screenshot`: the README's picture of the operations page, taken from the real page
 * during a real failover, so it stays true. Starts a local topology (loopback, free ports, temp
 * dirs) and `node dist/src/server.js` in front of it, sends a bounded trickle of requests, opens
 * /ui in headless Chromium at 1280 px, runs SENTINEL FAILOVER, waits until the page names the new
 * master and shows +switch-master, and writes docs/ui.png (or the path given as argument).
 * Everything it started is stopped.
 */
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { launchChromium } from '../test/helpers/browser.js'
import { startProcess } from '../test/helpers/gateway.js'
import { startTopology } from '../test/helpers/topology.js'

/** Two trickles (reads, writes): each at most TRICKLE_MAX requests, one every TRICKLE_MS, until the picture is taken. */
const TRICKLE_MAX = 5000
const TRICKLE_MS = 25
/** Traffic on the charts before the failover. */
const WARM_UP_MS = 45_000
const KEYS = 20

const root = (() => {
  const here = new URL('../', import.meta.url)
  return fileURLToPath(here.href.endsWith('/dist/') ? new URL('../', here) : here)
})()
const out = path.resolve(process.argv[2] ?? path.join(root, 'docs', 'ui.png'))
const say = (line: string): void => { process.stdout.write(`${line}\n`) }

const teardowns: Array<() => unknown> = []
const t = { teardown: (fn: () => unknown) => { teardowns.unshift(fn) } }
let stopTrickle = false
try {
  const topo = await startTopology()
  t.teardown(async () => await topo.stop())
  const gw = await startProcess(t, topo, { LOG_LEVEL: 'warn' })
  const browser = await launchChromium(t)
  for (let i = 0; i < KEYS; i++) await fetch(`${gw.url}/kv/demo:${i}`, { method: 'PUT', body: 'first' })
  // Reads and writes apart: writes held by the failover must not stop the reads.
  const loop = async (request: (i: number) => Promise<Response>): Promise<void> => {
    for (let i = 0; i < TRICKLE_MAX && !stopTrickle; i++) {
      await request(i).then(r => r.arrayBuffer(), () => null)
      await new Promise(resolve => setTimeout(resolve, TRICKLE_MS))
    }
  }
  const trickle = Promise.all([
    loop(async i => await fetch(`${gw.url}/kv/demo:${i % KEYS}`)),
    loop(async i => await fetch(`${gw.url}/kv/demo:${i % KEYS}`, { method: 'PUT', body: `value ${i}` }))
  ])
  const page = await browser.newPage()
  await page.setViewportSize({ width: 1280, height: 800 })
  await page.goto(`${gw.url}/ui`, { waitUntil: 'load' })
  await page.locator('#live').waitFor({ state: 'visible' })
  await page.waitForTimeout(WARM_UP_MS)
  const { from, to } = await topo.failover()
  say(`failover :${from} -> :${to}`)
  await page.locator(`#master-name[data-master="${topo.announceHost}:${to}"]`).waitFor({ timeout: 5000 })
  await page.locator('#timeline li[data-kind="+switch-master"]').first().waitFor({ timeout: 5000 })
  // The writes held and released, the replicas reattached: a few seconds more on the picture.
  await page.waitForTimeout(4000)
  mkdirSync(path.dirname(out), { recursive: true })
  await page.screenshot({ path: out, fullPage: true })
  say(`wrote ${path.relative(process.cwd(), out)}`)
  stopTrickle = true
  await trickle
} finally {
  stopTrickle = true
  for (const fn of teardowns) await Promise.resolve(fn()).catch((err: unknown) => say(`cleanup: ${String(err)}`))
}
