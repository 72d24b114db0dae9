/**
 * Finding 1 (critical): a forged Sentinel hello published through the gateway made every sentinel
 * follow a rogue redis-server. The attacker's rogue is set up for real (a redis-server on a free
 * loopback port, started and stopped by pid); the forged hello is replayed through every route, by
 * every token, also from inside scripts; then for ~2 s no sentinel may name the rogue, the gateway's
 * /topology keeps the master, and the servers are checked. A control at the end publishes the same
 * hello directly on the master and shows that it does move the sentinels (the replay is real).
 */
import t, { type Test } from 'tap'
import { checkServers, securityEnv, TOKENS, type TokenKind } from '../helpers/security.js'
import { expectRefused, JSON_ROUTES, refusedSomehow, ROUTES, send } from '../helpers/security-http.js'
import { forgedHello, startRogue } from '../helpers/security-rdb.js'

const env = await securityEnv(t)
const rogue = await startRogue()
t.teardown(rogue.stop)
const sentinelPorts = env.topo.sentinels.map(s => s.port)

/** Each sentinel's answer to GET-MASTER-ADDR-BY-NAME, as host:port. */
const sentinelMasters = async (): Promise<string[]> => await Promise.all(sentinelPorts.map(async port => {
  try {
    const r = await env.on(port, c => c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', env.topo.masterName))
    return Array.isArray(r) ? `${String(r[0])}:${String(r[1])}` : String(r)
  } catch (err) { return `error: ${(err as Error).message}` }
}))

/** The gateway's master (GET /topology with the ops right). */
const gatewayMaster = async (): Promise<string> => {
  const r = await fetch(`${env.url}/topology`, { headers: { authorization: `Bearer ${TOKENS.admin}` }, signal: AbortSignal.timeout(3000) })
  const body = await r.json() as { master?: { port?: number } | null }
  return r.status === 200 ? `:${body.master?.port}` : `HTTP ${r.status}`
}

const epochOf = async (): Promise<number> => {
  const m = await env.on(sentinelPorts[0]!, c => c.call('SENTINEL', 'MASTER', env.topo.masterName)) as string[]
  const i = m.indexOf('config-epoch')
  return Number(m[i + 1] ?? 0)
}

const rogueAddr = `127.0.0.1:${rogue.port}`
const hello = forgedHello(env.topo.masterName, '127.0.0.1', rogue.port, (await epochOf()) + 100)
t.comment(`rogue redis-server at ${rogueAddr} (pid ${rogue.pid}); forged hello: ${hello}`)

/** Polls for `ms`: every sentinel keeps the master, the gateway too, the rogue gets no replica. */
async function noTakeover (t: Test, ms: number): Promise<void> {
  const want = `127.0.0.1:${env.masterPort}`
  const seen = new Set<string>()
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    for (const a of await sentinelMasters()) if (a !== want) seen.add(`a sentinel named ${a}`)
    const g = await gatewayMaster().catch((err: Error) => err.message)
    if (g !== `:${env.masterPort}`) seen.add(`the gateway's /topology master is ${g}`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  const rogueRole = await (async () => { const c = rogue.client(); try { return await c.call('ROLE') as unknown[] } finally { c.disconnect() } })()
  const replicas = Array.isArray(rogueRole[2]) ? rogueRole[2].length : -1
  t.same([...seen], [], `for ${ms} ms every sentinel and the gateway named the master ${want}, never the rogue ${rogueAddr}`)
  t.equal(replicas, 0, 'no real node replicates from the rogue')
}

const tokens: Array<[TokenKind, 400 | 403]> = [['admin', 403], ['reader', 403], ['sess', 403]]

t.test('PUBLISH/SPUBLISH of a forged hello on __sentinel__:hello is refused on every route for every token', async t => {
  for (const [kind, want] of tokens) {
    for (const name of ['PUBLISH', 'publish', 'SPUBLISH']) {
      await expectRefused(t, env.url, kind, TOKENS[kind], [name, '__sentinel__:hello', hello], want)
    }
  }
  // Also the other reserved channels (keyspace notifications, Redis's own).
  for (const channel of ['__redis__:invalidate', '__keyspace@0__:canary:string', '__keyevent@0__:del']) {
    await expectRefused(t, env.url, 'admin', TOKENS.admin, ['PUBLISH', channel, 'x'], 403, ROUTES)
  }
  await noTakeover(t, 2000)
  await checkServers(t, env, { what: 'after PUBLISH of the forged hello' })
})

t.test('the same hello from inside EVAL / EVAL_RO is refused (gateway or Redis ACL) and changes nothing', async t => {
  const scripts = [
    "return redis.call('PUBLISH', ARGV[1], ARGV[2])",
    "return redis.pcall('PUBLISH', ARGV[1], ARGV[2])",
    "return redis.call('SPUBLISH', ARGV[1], ARGV[2])"
  ]
  for (const script of scripts) {
    for (const ev of ['EVAL', 'EVAL_RO']) {
      const cmd = [ev, script, '0', '__sentinel__:hello', hello]
      // ADMIN has the script right: the script runs and Redis ACL (the second wall) refuses the PUBLISH,
      // or the gateway refuses it first. A pcall returns the error as the script's own result: an
      // answer 200 whose result is an error text is accepted, as long as nothing was published.
      for (const route of JSON_ROUTES) {
        const o = await send(env.url, TOKENS.admin, route, cmd)
        const refused = refusedSomehow(o) || (route === 'single' && o.status === 200 && /NOPERM/.test(o.text))
        t.ok(refused, `admin ${route} ${ev} ${JSON.stringify(script)} is refused (got ${o.status} ${o.text.slice(0, 160)})`)
        t.notOk(/"result":\s*[1-9]/.test(o.text), 'the PUBLISH did not reach any subscriber')
      }
    }
  }
  for (const kind of ['reader', 'sess'] as const) {
    await expectRefused(t, env.url, kind, TOKENS[kind], ['EVAL', scripts[0]!, '0', '__sentinel__:hello', hello], 403)
  }
  await noTakeover(t, 2000)
  await checkServers(t, env, { what: 'after scripts publishing the forged hello' })
})

t.test('control: the same hello published directly on the master does move the sentinels', async t => {
  // Proves the replay above is the real attack (a wrong hello would make the test above pass vacuously).
  const n = await env.master.publish('__sentinel__:hello', forgedHello(env.topo.masterName, '127.0.0.1', rogue.port, (await epochOf()) + 200))
  t.ok(n >= 3, `the master delivered the hello to the ${n} sentinel connections`)
  const deadline = Date.now() + 3000
  let named: string[] = []
  while (Date.now() < deadline) {
    named = await sentinelMasters()
    if (named.some(a => a === rogueAddr)) break
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  t.ok(named.some(a => a === rogueAddr), `a sentinel follows the rogue ${rogueAddr} once the hello reaches it (${named.join(' ')})`)
})
