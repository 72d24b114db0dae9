/**
 * Requirement 5: Redis ACL is a second wall behind the gateway's own checks. The users come from
 * src/security/acl.ts and are in every node's config (test/helpers/topology.ts), the gateway logs in
 * with them (test/helpers/gateway.ts): this file talks to Redis AS those users, directly, as a bug in
 * the gateway's checks would, and checks that Redis itself refuses (NOPERM) what would hijack the
 * sentinels, flush the data or leave the database, while everything the gateway needs still works,
 * before and after a failover.
 */
import { readFileSync } from 'node:fs'
import { Redis } from 'ioredis'
import t from 'tap'
import { aclSetuserLines, CONTROL_USER, DATA_USER, patternsExcept } from '../../src/security/acl.js'
import { isReservedChannel, isReservedKey, RESERVED_KEY_PREFIX } from '../../src/security/reserved.js'
import { startProcess } from '../helpers/gateway.js'
import { checkServers, securityEnv, TOKENS } from '../helpers/security.js'
import { topologyFor } from '../helpers/topology.js'

const env = await securityEnv(t)
const { topo } = env
const acl = topo.acl!

/** A client of `port` logged in as one of the ACL users (closed on teardown). */
function as (who: 'data' | 'control', port = env.masterPort): Redis {
  const { username, password } = acl[who]
  const c = new Redis({ host: '127.0.0.1', port, username, password, maxRetriesPerRequest: 0, enableReadyCheck: false, lazyConnect: false })
  c.on('error', () => {})
  t.teardown(() => c.disconnect())
  return c
}
/** Redis's answer to `cmd`: 'OK:<reply>' or the error message. */
async function answer (c: Redis, ...cmd: string[]): Promise<string> {
  return await c.call(cmd[0]!, ...cmd.slice(1)).then(r => `OK:${String(r)}`, (err: Error) => err.message)
}
const FORGED_HELLO = `127.0.0.1,1,${'a'.repeat(40)},999,mymaster,127.0.0.1,1,999`

t.test('the key patterns exclude exactly the reserved prefix, as Redis matches them', async t => {
  const data = as('data')
  const keys = ['', 'a', '_', '__', '___', '__s', '__sk', '__skv', '__skvx', '__skx:', '_skv:', 'x__skv:', RESERVED_KEY_PREFIX, `${RESERVED_KEY_PREFIX}ratelimit:token:x`, `${RESERVED_KEY_PREFIX}canary`]
  for (const key of keys) {
    const got = await answer(data, 'SET', key, 'v')
    if (isReservedKey(key)) t.match(got, /^NOPERM/, `SET '${key}' (reserved) as the data user: NOPERM`)
    else t.equal(got, 'OK:OK', `SET '${key}' as the data user works`)
  }
  t.match(await answer(data, 'GET', `${RESERVED_KEY_PREFIX}canary`), /^NOPERM/, 'GET of a reserved key: NOPERM')
  t.match(await answer(data, 'RENAME', 'a', `${RESERVED_KEY_PREFIX}x`), /^NOPERM/, 'RENAME into the reserved prefix: NOPERM')
  t.same(patternsExcept('ab'), ['[^a]*', '', 'a[^b]*', 'a'], 'patternsExcept: for each proper prefix, other continuations and itself')
  await data.del(...keys.filter(k => !isReservedKey(k)))
})

t.test('channels starting with __ are refused, every other channel is allowed', async t => {
  const data = as('data')
  for (const ch of ['__sentinel__:hello', '__redis__:invalidate', '__keyspace@0__:k', '__keyevent@0__:set', '__x', 'news', '_', '_x', 'a__b']) {
    const got = await answer(data, 'PUBLISH', ch, ch === '__sentinel__:hello' ? FORGED_HELLO : 'm')
    if (isReservedChannel(ch)) t.match(got, /^NOPERM/, `PUBLISH ${ch} as the data user: NOPERM`)
    else t.match(got, /^OK:\d+$/, `PUBLISH ${ch} works`)
  }
  t.match(await answer(data, 'SPUBLISH', '__sentinel__:hello', FORGED_HELLO), /^NOPERM/, 'SPUBLISH __sentinel__:hello: NOPERM')
})

t.test('the data user: Redis refuses what would hijack, flush, leave the database or run admin commands', async t => {
  const data = as('data')
  const refused: string[][] = [
    ['FLUSHALL'], ['FLUSHDB'], ['SELECT', '1'], ['MOVE', 'canary:string', '1'], ['SWAPDB', '0', '1'],
    ['COPY', 'canary:string', 'x', 'DB', '9'], ['MIGRATE', '127.0.0.1', '1', 'canary:string', '0', '100'],
    ['RESTORE', 'x', '0', 'payload'], ['CONFIG', 'SET', 'maxmemory', '1'], ['CONFIG', 'GET', '*'], ['INFO'], ['KEYS', '*'],
    ['SLOWLOG', 'GET'], ['CLIENT', 'LIST'], ['CLIENT', 'KILL', 'TYPE', 'normal'], ['CLIENT', 'REPLY', 'OFF'], ['REPLICAOF', '127.0.0.1', '1'],
    ['SCRIPT', 'FLUSH'], ['SCRIPT', 'KILL'], ['FUNCTION', 'FLUSH'], ['ACL', 'SETUSER', 'x'], ['MONITOR'], ['SHUTDOWN', 'NOSAVE'], ['DEBUG', 'SLEEP', '0']
  ]
  for (const cmd of refused) {
    // DEBUG is off on these nodes (enable-debug-command): ask ACL DRYRUN what Redis's ACL says of it.
    const got = cmd[0] === 'DEBUG'
      ? await env.master.call('ACL', 'DRYRUN', DATA_USER, ...cmd).then(String, (err: Error) => err.message)
      : await answer(data, ...cmd)
    t.match(got, /NOPERM|no permissions/i, `${cmd.join(' ')}: refused by Redis (${got.slice(0, 80)})`)
  }
  const inScript: Array<[string, string]> = [
    ['FLUSHALL', "return redis.call('FLUSHALL')"],
    ['PUBLISH __sentinel__:hello', `return redis.call('PUBLISH', '__sentinel__:hello', '${FORGED_HELLO}')`],
    ['SELECT', "return redis.call('SELECT', '1')"],
    ['COPY ... DB', "return redis.call('COPY', 'canary:string', 'x', 'DB', '9')"],
    ['MIGRATE', "return redis.call('MIGRATE', '127.0.0.1', '1', 'canary:string', '0', '100')"],
    ['INFO', "return redis.call('INFO')"],
    ['SET of a reserved key', `return redis.call('SET', '${RESERVED_KEY_PREFIX}canary', 'x')`]
  ]
  for (const [what, script] of inScript) {
    t.match(await answer(data, 'EVAL', script, '0'), /can't (run|publish|access)/, `EVAL calling ${what}: refused by Redis's ACL`)
  }
})

t.test('the data user runs what the gateway needs: data commands, scripts, ROLE, CLIENT ID, WAIT, tracking', async t => {
  const data = as('data')
  t.equal(await answer(data, 'SET', 'acl:k', 'v'), 'OK:OK')
  t.equal(await answer(data, 'EVAL', "return redis.call('GET', KEYS[1])", '1', 'acl:k'), 'OK:v', 'a script reads as the data user')
  t.match(await answer(data, 'ROLE'), /^OK:master/, 'ROLE (the write pipeline checks the master)')
  t.match(await answer(data, 'CLIENT', 'ID'), /^OK:\d+$/, 'CLIENT ID')
  t.match(await answer(data, 'WAIT', '0', '0'), /^OK:\d+$/, 'WAIT (on the connection that wrote)')
  t.equal(await answer(data, 'CLIENT', 'TRACKING', 'ON'), 'OK:OK', 'CLIENT TRACKING (near-cache)')
  t.match(await answer(data, 'SCRIPT', 'LOAD', 'return 1'), /^OK:[0-9a-f]{40}$/, 'SCRIPT LOAD (EVALSHA clients)')
  t.equal(await answer(data, 'EVAL', "return redis.call('ROLE')", '0').then(r => /not allowed from script/.test(r)), true, 'ROLE is noscript: no script can call it')
})

t.test('the control user: checks, invalidations and reserved keys, nothing else', async t => {
  const control = as('control')
  t.match(await answer(control, 'INFO', 'replication'), /^OK:# Replication/, 'INFO')
  t.match(await answer(control, 'ROLE'), /^OK:master/, 'ROLE')
  t.match(await answer(control, 'COMMAND', 'COUNT'), /^OK:\d+$/, 'COMMAND')
  t.match(await answer(control, 'SCRIPT', 'KILL'), /NOTBUSY/, 'SCRIPT KILL (answered NOTBUSY: nothing runs)')
  t.equal(await answer(control, 'CLIENT', 'KILL', 'TYPE', 'master'), 'OK:0', 'CLIENT KILL (a replica\'s link stuck in TCP backoff; on a master: no master link)')
  t.match(await answer(control, 'CLIENT', 'LIST'), /^NOPERM/, 'CLIENT LIST: NOPERM')
  t.equal(await answer(control, 'SET', `${RESERVED_KEY_PREFIX}acl-test`, '1', 'PX', '5000'), 'OK:OK', 'a reserved key (rate-limit counters)')
  t.match(await answer(control, 'GET', 'canary:string'), /^NOPERM/, 'a client key: NOPERM')
  t.match(await answer(control, 'FLUSHALL'), /^NOPERM/, 'FLUSHALL: NOPERM')
  t.match(await answer(control, 'PUBLISH', '__sentinel__:hello', FORGED_HELLO), /^NOPERM/, 'PUBLISH __sentinel__:hello: NOPERM')
  const sub = as('control')
  t.same(await sub.subscribe('__redis__:invalidate'), 1, 'SUBSCRIBE __redis__:invalidate')
})

t.test('the gateway logs in as these users and works end to end, also after a failover', async t => {
  const clients = String(await env.master.call('CLIENT', 'LIST'))
  const users = (name: string): Set<string> => new Set(clients.split('\n').filter(l => l.includes(`name=${name} `)).map(l => /user=(\S+)/.exec(l)?.[1] ?? '?'))
  t.same([...users('skv-gateway')], [DATA_USER], '/kv connections: the data user')
  t.same([...users('skv-gateway-control')], [CONTROL_USER], 'control connections: the control user')
  const put = async (key: string): Promise<number> => (await fetch(`${env.url}/kv/${key}`, { method: 'PUT', body: 'v', headers: { authorization: `Bearer ${TOKENS.admin}` } })).status
  const run = async (cmd: string[]): Promise<unknown> => await (await fetch(`${env.url}/`, { method: 'POST', body: JSON.stringify(cmd), headers: { authorization: `Bearer ${TOKENS.admin}` } })).json()
  t.equal(await put('acl:e2e'), 201, 'PUT /kv')
  t.same(await run(['GET', 'acl:e2e']), { result: 'v' }, 'an Upstash GET')
  const { to } = await topo.failover()
  for (const r of topo.redis) {
    const list = String(await env.on(r.port, async c => await c.call('ACL', 'LIST')))
    t.ok(list.includes(`user ${DATA_USER} on`) && list.includes(`user ${CONTROL_USER} on`), `:${r.port} still has both users after the failover`)
  }
  let status = 0
  // 201 created; 200 replaced: an earlier attempt that answered 504 (outcome unknown) did apply.
  const done = (st: number): boolean => st === 201 || st === 200
  for (let i = 0; i < 100 && !done(status); i++) {
    status = await put('acl:after-failover')
    if (!done(status)) await new Promise(resolve => setTimeout(resolve, 200))
  }
  t.ok(done(status), `PUT /kv after the failover to :${to} (${status})`)
  t.same(await run(['SET', 'acl:after', '1']), { result: 'OK' }, 'an Upstash SET after the failover')
  await topo.waitConverged()
  await checkServers(t, { ...env, masterPort: to }, { what: 'after the ACL checks and the failover' })
})

t.test('the README gives the exact ACL SETUSER lines', async t => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  for (const line of aclSetuserLines()) t.ok(readme.includes(line), `README contains: ${line.slice(0, 60)}...`)
})

t.test('without the ACL users configured the gateway still works, and warns once at start', async t => {
  const plain = await topologyFor(t, { acl: false, replicas: 1, sentinels: 1, quorum: 1 })
  t.equal(plain.acl, undefined, 'a topology without ACL users')
  const gw = await startProcess(t, plain, { LOG_LEVEL: 'warn', WORKERS: '1' })
  const put = await fetch(`${gw.url}/kv/plain`, { method: 'PUT', body: 'v' })
  t.equal(put.status, 201, 'PUT /kv works with the default user')
  t.equal(await (await fetch(`${gw.url}/kv/plain`)).text(), 'v', 'GET /kv too')
  const warnings = gw.output().split('\n').filter(l => l.includes('REDIS_CONTROL_USERNAME is not set'))
  t.equal(warnings.length, 1, 'one warning that the second wall is not configured')
})
