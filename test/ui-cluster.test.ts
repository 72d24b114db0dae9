/**
 * The operations page (/ui) in a real Chromium against a gateway in Redis Cluster mode (3 masters
 * + 3 replicas): the page shows the shards (slot ranges, master, replicas with lag and breakers,
 * WAIT count, last failover), not one "master"; no sentinels table; after `CLUSTER FAILOVER` on a
 * shard's replica the page names that shard's new master and its failover within 5 s, and the
 * timeline says which shard. No console error, no serious axe-core violation, no horizontal
 * scrolling at 390 px. Screenshots go to test-artifacts/ui/ (gitignored).
 */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { launchChromium, watchedPage } from './helpers/browser.js'
import { clusterFor, startClusterGateway } from './helpers/cluster.js'
import { pollUntil } from './helpers/kv-client.js'
import { waitUntil } from './helpers/topology-procs.js'
import { axeSerious, overflowAt, shot } from './helpers/ui-page.js'

const OPS = `ops-${randomBytes(12).toString('hex')}`
const RW = `rw-${randomBytes(12).toString('hex')}`

const browser = await launchChromium(t)
const cluster = await clusterFor(t, { nodeTimeoutMs: 1000 })
const gw = await startClusterGateway(t, cluster, { AUTH_TOKENS: `${OPS}:o,${RW}:rw` })
const key = (port: number): string => `127.0.0.1:${port}`

t.test('the page shows each shard; CLUSTER FAILOVER: the shard\'s new master within 5 s', async t => {
  await pollUntil(20_000, 100, async () => {
    const shards = gw.app.cluster?.shards ?? []
    return shards.length === 3 && shards.every(s => s.snapshot.masterConfirmed && s.snapshot.replicas.every(r => r.healthy)) ? true : undefined
  })
  const { page, problems } = await watchedPage(browser)
  await page.setViewportSize({ width: 1280, height: 800 })
  t.equal((await page.goto(`${gw.url}/ui`, { waitUntil: 'load' }))?.status(), 200)
  await page.locator('#token').fill(OPS)
  await page.keyboard.press('Enter')
  await page.locator('#live').waitFor({ state: 'visible' })

  const view = await cluster.view()
  const masters = view.filter(n => n.role === 'master' && n.slots.length > 0)
  await page.locator('#shards-body tr').nth(2).waitFor()
  t.equal(await page.locator('#shards-body tr').count(), 3, 'three shard rows')
  for (const m of masters) {
    const row = page.locator(`#shards-body tr[data-shard="${m.id.slice(0, 8)}"][data-master="${key(m.port)}"]`)
    t.equal(await row.count(), 1, `shard ${m.id.slice(0, 8)}: master ${key(m.port)}`)
    t.match(await row.locator('td').first().textContent(), m.slots.join(', '), `its slots ${m.slots.join(', ')}`)
    t.match(await row.textContent(), /1\/1 healthy/, 'its replica healthy')
    const replica = view.find(n => n.masterId === m.id)!
    const node = page.locator(`#nodes-body tr[data-node="${key(replica.port)}"][data-shard="${m.id.slice(0, 8)}"][data-health="healthy"]`)
    await node.waitFor()
    t.match(await node.textContent(), /replica of/, `replica ${key(replica.port)} listed under its shard with lag and breaker: ${await node.textContent()}`)
  }
  t.equal(await page.locator('#nodes-body tr').count(), 6, 'six data nodes')
  t.match(await page.locator('#summary').textContent(), /3 shard\(s\) serving 16384 of 16384 hash slots/)
  t.ok(await page.locator('#sentinels-wrap').isHidden(), 'no sentinels table in Cluster mode')
  t.equal(await page.locator('#picture .node.master').count(), 3, 'the picture draws three masters')
  t.equal(await page.locator('#picture .node.replica').count(), 3, 'and three replicas')
  await shot(page, 'cluster-1280.png')

  // Traffic, so the charts and the reads per node have something to show.
  for (let i = 0; i < 20; i++) {
    await fetch(`${gw.url}/kv/uicl:${i}`, { method: 'PUT', body: `v${i}`, headers: { authorization: `Bearer ${RW}` } })
    await fetch(`${gw.url}/kv/uicl:${i}`, { headers: { authorization: `Bearer ${RW}` } })
  }

  const a = masters[0]!
  const aReplica = view.find(n => n.masterId === a.id)!
  const id = a.id.slice(0, 8)
  const aSlot = Number(a.slots[0]!.split('-')[0])
  const r = cluster.client(aReplica.port)
  try { await r.call('CLUSTER', 'FAILOVER') } finally { r.disconnect() }
  await waitUntil(`:${aReplica.port} to serve shard ${id}`, 10_000, async () => await cluster.masterOf(aSlot) === aReplica.port ? true : 'not yet')
  const seenAt = Date.now()
  await page.locator(`#shards-body tr[data-shard="${id}"][data-master="${key(aReplica.port)}"] td[data-failover="${key(aReplica.port)}"]`).waitFor({ timeout: 5000 })
  await page.locator('#timeline li[data-kind="master-changed"]', { hasText: `of shard ${id}` }).first().waitFor({ timeout: 5000 })
  t.pass(`the page names shard ${id}'s new master ${key(aReplica.port)}, its failover and the timeline event ${Date.now() - seenAt} ms after the cluster agreed`)
  await page.locator(`#nodes-body tr[data-node="${key(a.port)}"][data-role="replica"][data-shard="${id}"]`).waitFor({ timeout: 10_000 })
  t.pass(`the old master ${key(a.port)} listed as the shard's replica`)
  await page.waitForTimeout(1200)
  await shot(page, 'cluster-failover-1280.png')
  t.same(await axeSerious(page), [], 'axe-core: no serious or critical violation')

  const overflow = await overflowAt(page, 390)
  t.ok(overflow <= 1, `no horizontal scrolling at 390 px (${overflow} px over)`)
  await shot(page, 'cluster-390.png')
  t.same(problems, [], 'no console error, CSP violation or failed request')
  await page.close()
})
