/**
 * Finding 2 (critical): SESS DUMPed its own small hash, corrupted one listpack header byte,
 * recomputed the CRC64 and RESTOREd it under its prefix; one HGETALL then hit a Redis assertion and
 * the gateway's retries took all three nodes down. The payload is built as the review did (DUMP on
 * the master, helpers/security-rdb.ts for the CRC), first shown to crash a scratch redis-server of
 * our own, then replayed through every route by every token: RESTORE is refused for everyone (400),
 * and after an HGETALL of the key every node is still alive.
 */
import t from 'tap'
import { checkServers, securityEnv, snapshot, TOKENS, type TokenKind } from '../helpers/security.js'
import { expectAnswered, expectRefused, JSON_ROUTES, send } from '../helpers/security-http.js'
import { corruptListpackHash, crc64, crcMatches, startScratchRedis } from '../helpers/security-rdb.js'

const env = await securityEnv(t)

await env.master.hset('session:h', 'f1', 'v1', 'f2', 'v2')
await env.master.call('WAIT', '2', '2000')
const dump = await env.master.dumpBuffer('session:h')
const payload = corruptListpackHash(dump)

t.test('the forged payload is the real attack: valid CRC64, and it crashes an unprotected redis-server', async t => {
  t.equal(crc64(Buffer.from('123456789')).toString(16), 'e9c6d914c4b8d9ca', 'CRC64 (Jones) check value')
  t.ok(crcMatches(dump), 'our CRC64 reproduces the trailer DUMP wrote')
  t.ok(crcMatches(payload), 'the corrupt payload carries a valid CRC64')
  const scratch = await startScratchRedis()
  t.teardown(scratch.stop)
  const c = scratch.client()
  t.teardown(() => c.disconnect())
  t.equal(await c.restore('x', 0, payload, 'REPLACE'), 'OK', 'a redis-server without the gateway accepts it')
  const read = await c.hgetall('x').then(() => 'answered', (err: Error) => err.message)
  await new Promise(resolve => setTimeout(resolve, 300))
  const alive = await c.ping().then(() => true, () => false)
  t.notOk(alive, `one HGETALL kills that redis-server (HGETALL: ${read})`)
})

t.test('RESTORE of the payload is refused for every token on every route', async t => {
  const before = await snapshot(env.master)
  const tokens: TokenKind[] = ['sess', 'admin', 'reader']
  for (const kind of tokens) {
    // Binary payloads travel as the raw body of a path-form POST (segments, then the body, then the query).
    const path = await send(env.url, TOKENS[kind], 'path', ['RESTORE', 'session:crash', '0'], { body: payload })
    const url = `${env.url}/RESTORE/session%3Acrash/0?REPLACE`
    const r = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${TOKENS[kind]}` }, body: new Uint8Array(payload) })
    const text = await r.text()
    t.equal(r.status, 400, `${kind} POST /RESTORE/session:crash/0?REPLACE <payload> is refused 400 (got ${r.status} ${text.slice(0, 120)})`)
    t.match(text, /^\{"error":"ERR /, `${kind}: Upstash error shape with ERR`)
    t.equal(path.status, 400, `${kind} POST /RESTORE/session:crash/0 <payload> is refused 400 (got ${path.status})`)
    // JSON can only carry it as text (bytes >= 0x80 become UTF-8): refused by name all the same.
    await expectRefused(t, env.url, kind, TOKENS[kind], ['RESTORE', 'session:crash', '0', payload.toString('latin1'), 'REPLACE'], 400, JSON_ROUTES)
    await expectRefused(t, env.url, kind, TOKENS[kind], ['restore', 'session:crash2', '0', payload.toString('latin1')], 400, JSON_ROUTES)
    // RESTORE-ASKING is the cluster variant of the same command.
    await expectRefused(t, env.url, kind, TOKENS[kind], ['RESTORE-ASKING', 'session:crash', '0', payload.toString('latin1'), 'REPLACE'], 400, JSON_ROUTES)
  }
  t.equal(await env.master.exists('session:crash', 'session:crash2'), 0, 'no key was restored')
  await checkServers(t, env, { what: 'after the RESTOREs', before, which: () => true })
})

t.test('an HGETALL of the key afterwards, through every route, leaves all three nodes alive', async t => {
  for (const route of JSON_ROUTES) {
    const o = await send(env.url, TOKENS.sess, route, ['HGETALL', 'session:crash'])
    expectAnswered(t, o, `sess ${route} HGETALL session:crash`)
  }
  const o = await send(env.url, TOKENS.sess, 'path', ['HGETALL', 'session:h'])
  expectAnswered(t, o, 'sess path HGETALL session:h (the intact original)')
  await checkServers(t, env, { what: 'after HGETALL' })
  for (const r of env.topo.redis) t.ok(r.alive, `redis :${r.port} (pid ${r.pid}) is alive`)
})
