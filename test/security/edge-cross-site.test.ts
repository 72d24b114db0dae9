/**
 * Finding 16: an open gateway accepted writes from any web page: `<img src="http://gw/set/k/1">`
 * and a no-cors `fetch(gw + '/', {method: 'POST', body: '["SET","k","1"]'})` with text/plain, both
 * without a preflight. Replayed in a real Chromium (playwright-core, Debian's chromium) from pages
 * served on other origins, against an open gateway (no token: the case of the finding) whose
 * CORS_ORIGINS names one allowed origin:
 *  - from a cross-site page (http://localhost:<p>) and a same-site page (http://127.0.0.1:<other
 *    port>): <img> of a path-form write, no-cors GET and POST fetches, a text/plain form POST whose
 *    body is a JSON command, a form POST to the path form, a form GET navigation, a no-cors batch
 *    POST; each reached the gateway (counted as 403 in /metrics) and wrote nothing on the master;
 *  - control: the same page against a gateway with CORS_ORIGINS=* (every origin allowed, so no
 *    cross-site check) does write: the attacks are real;
 *  - a page on the allowed origin still writes (JSON POST /, path-form fetch, PUT /kv), the
 *    gateway's own page (/docs, same origin) too, and clients that are not browsers (no Origin, no
 *    Sec-Fetch-Site) as before.
 */
import { randomBytes } from 'node:crypto'
import type { Page } from 'playwright-core'
import t, { type Test } from 'tap'
import { launchChromium, servePage } from '../helpers/browser.js'
import { httpRequest } from '../helpers/edge-http.js'
import { startInProcess } from '../helpers/gateway.js'
import { topologyFor } from '../helpers/topology.js'

// The browser first: without Chromium this file fails at once, with what to install.
const browser = await launchChromium(t)
const topo = await topologyFor(t)
const html = '<!doctype html><html><head><meta charset="utf-8"><title>page</title></head><body><p>page</p></body></html>'
const allowedPage = await servePage(t, html)
const attackerPage = await servePage(t, html)
const allowedOrigin = `http://localhost:${allowedPage.port}`
const P = `edge-xs:${process.pid}:${Date.now()}:`
const env = { EVENT_LOOP_MAX_DELAY_MS: '0', CORS_ORIGINS: allowedOrigin }
const gw = await startInProcess(t, topo, env)
// The gateway listens on 127.0.0.1: pages on localhost are cross-site, pages on 127.0.0.1:<other port> same-site.
const attackers: Array<[string, string]> = [['cross-site', `http://localhost:${attackerPage.port}`], ['same-site', `http://127.0.0.1:${attackerPage.port}`]]

async function onMaster (key: string): Promise<string | null> {
  const c = topo.client((await topo.masterProc()).port)
  try { return await c.get(key) } finally { await c.quit() }
}

async function open (url: string): Promise<Page> {
  const p = await browser.newPage()
  const res = await p.goto(url, { waitUntil: 'load' })
  if (res === null || res.status() !== 200) throw new Error(`${url} answered ${res?.status() ?? 'nothing'}`)
  return p
}

/** 403 answers counted by the gateway (its /metrics: open gateway, no token needed). */
async function refusals (base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text()
  return text.split('\n').filter(l => l.startsWith('skv_http_requests_total{') && l.includes('status="403"'))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0)
}

/** Runs every attack from page `p` against `base`, each on its own key; resolves once each request completed. */
async function attack (p: Page, base: string, prefix: string): Promise<Record<string, string>> {
  const keys = {
    img: `${prefix}img`,
    noCorsGet: `${prefix}no-cors-get`,
    noCorsPost: `${prefix}no-cors-post`,
    formJson: `${prefix}form-json`,
    formPath: `${prefix}form-path`,
    formGet: `${prefix}form-get`,
    batch: `${prefix}batch`
  }
  await p.evaluate(async ({ base, keys }) => {
    const enc = encodeURIComponent
    const loaded = async (el: HTMLImageElement | HTMLIFrameElement): Promise<void> => await new Promise<void>(resolve => {
      el.addEventListener('load', () => resolve())
      el.addEventListener('error', () => resolve())
    })
    const img = document.createElement('img')
    const imgDone = loaded(img)
    img.src = `${base}/set/${enc(keys.img)}/1`
    document.body.append(img)
    await imgDone
    await fetch(`${base}/set/${enc(keys.noCorsGet)}/1`, { mode: 'no-cors' })
    await fetch(`${base}/`, { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: JSON.stringify(['SET', keys.noCorsPost, '1']) })
    await fetch(`${base}/kv/_batch`, { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ ops: [{ op: 'put', key: keys.batch, value: '1' }] }) })
    const submit = async (method: string, action: string, fields: Array<[string, string]>, enctype?: string): Promise<void> => {
      const frame = document.createElement('iframe')
      frame.name = `f${Math.random().toString(16).slice(2)}`
      document.body.append(frame)
      const done = loaded(frame)
      const form = document.createElement('form')
      form.method = method
      form.action = action
      form.target = frame.name
      if (enctype !== undefined) form.enctype = enctype
      for (const [name, value] of fields) {
        const input = document.createElement('input')
        input.type = 'hidden'
        input.name = name
        input.value = value
        form.append(input)
      }
      document.body.append(form)
      form.submit()
      await done
    }
    // text/plain form body "name=value": ["SET","<key>","x=1"] is a valid command.
    await submit('POST', `${base}/`, [[`["SET","${keys.formJson}","x`, '1"]']], 'text/plain')
    await submit('POST', `${base}/set/${enc(keys.formPath)}/1`, [])
    await submit('GET', `${base}/set/${enc(keys.formGet)}/1`, [])
  }, { base, keys })
  return keys
}

async function written (keys: Record<string, string>): Promise<Record<string, string | null>> {
  const out: Record<string, string | null> = {}
  for (const [what, key] of Object.entries(keys)) out[what] = await onMaster(key)
  return out
}

for (const [kind, origin] of attackers) {
  t.test(`a ${kind} page cannot write through an open gateway`, async (t: Test) => {
    const p = await open(`${origin}/`)
    const before = await refusals(gw.url)
    const keys = await attack(p, gw.url, `${P}${kind}:`)
    const after = await refusals(gw.url)
    t.ok(after - before >= 6, `the requests reached the gateway and were refused 403 (${after - before} refusals)`)
    const stored = await written(keys)
    for (const [what, value] of Object.entries(stored)) t.equal(value, null, `${what}: nothing written on the master`)
    await p.close()
  })
}

t.test('control: with CORS_ORIGINS=* (every origin allowed) the same page does write', async t => {
  const anyOrigin = await startInProcess(t, topo, { ...env, CORS_ORIGINS: '*' })
  const p = await open(`${attackers[0]![1]}/`)
  const keys = await attack(p, anyOrigin.url, `${P}control:`)
  const stored = await written(keys)
  t.equal(stored.img, '1', '<img> wrote (the attack is real)')
  t.equal(stored.noCorsPost, '1', 'the no-cors text/plain POST wrote')
  t.equal(stored.formJson, 'x=1', 'the text/plain form POST wrote its JSON command')
  t.equal(stored.formPath, '1', 'the form POST to the path form wrote')
  await p.close()
})

t.test('the allowed origin, the gateway\'s own page and non-browser clients still write', async t => {
  const p = await open(`${allowedOrigin}/`)
  const k = `${P}allowed:`
  const r = await p.evaluate(async ({ base, k }) => {
    const enc = encodeURIComponent
    const post = await fetch(`${base}/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(['SET', `${k}post`, 'v']) })
    const path = await fetch(`${base}/set/${enc(`${k}path`)}/v`)
    const put = await fetch(`${base}/kv/${enc(`${k}put`)}`, { method: 'PUT', body: 'v' })
    return { post: [post.status, await post.text()], path: path.status, put: put.status }
  }, { base: gw.url, k })
  t.same(r.post, [200, '{"result":"OK"}'], 'JSON POST / from the allowed origin: 200')
  t.equal(r.path, 200, 'path-form fetch from the allowed origin: 200')
  t.equal(r.put, 201, 'PUT /kv from the allowed origin: 201')
  for (const what of ['post', 'path', 'put']) t.equal(await onMaster(`${k}${what}`), 'v', `${what}: written on the master`)
  await p.close()

  const own = await open(`${gw.url}/docs`)
  const status = await own.evaluate(async ({ k }) => (await fetch('/', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(['SET', `${k}own`, 'v']) })).status, { k })
  t.equal(status, 200, 'a same-origin page (the gateway\'s /docs) writes')
  t.equal(await onMaster(`${k}own`), 'v', 'written on the master')
  await own.close()

  const curl = await httpRequest(`${gw.url}/set/${encodeURIComponent(`${k}curl`)}/v`)
  t.equal(curl.status, 200, 'a client without Origin or Sec-Fetch-Site (curl) writes with a path-form GET')
  const server = await httpRequest(`${gw.url}/`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify(['SET', `${k}server`, 'v']) })
  t.equal(server.status, 200, 'and with a text/plain POST')
  t.equal(await onMaster(`${k}curl`), 'v')
  t.equal(await onMaster(`${k}server`), 'v')
  const refused = await httpRequest(`${gw.url}/`, { method: 'POST', headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }, body: JSON.stringify(['SET', `${k}evil`, 'v']) })
  t.equal(refused.status, 403, 'the refusal answers 403 ...')
  t.match((refused.json as { error?: unknown }).error, /^GW_ERR_FORBIDDEN cross-site/, '... in the Upstash shape on the Upstash routes')
  const kvRefused = await httpRequest(`${gw.url}/kv/${encodeURIComponent(`${k}evil`)}`, { method: 'PUT', headers: { origin: 'https://evil.example' }, body: 'v' })
  t.equal(kvRefused.status, 403, 'an older browser (Origin, no Sec-Fetch-Site) on another site: 403 on /kv ...')
  t.equal((kvRefused.json as { error?: { code?: string } }).error?.code, 'GW_ERR_FORBIDDEN', '... in the gateway shape')
  t.equal(await onMaster(`${k}evil`), null, 'nothing written')
})
