/**
 * Requirement 7 (findings 5 and 7): bulkheads and no retry storms, against a real topology.
 * - The command endpoint has its own connections: with both of them parked by blocked commands, a
 *   PUT /kv of another client still answers at once; the parked connections are closed and replaced
 *   when their commands time out (a BLOCK 0 would hold them forever), and the endpoint works again.
 * - A 3 s Lua busy loop read (EVAL_RO) costs one replica: it is answered after the command timeout,
 *   never sent to another node, SCRIPT KILL goes to that node's control connection, the master keeps
 *   taking writes and the sentinels keep their master.
 * - The same loop as a write (EVAL) freezes the master: the sentinels fail it over; /kv writes come
 *   back within a bound, /readyz says 503 while they cannot be served and 200 once they can, and the
 *   gateway does not stay broken afterwards (finding 5's stuck gateway).
 */
import type { Redis } from 'ioredis'
import t from 'tap'
import { startInProcess } from '../helpers/gateway.js'
import { topologyFor } from '../helpers/topology.js'

const ADMIN = 'bulkhead-admin-token'
const topo = await topologyFor(t)
const gw = await startInProcess(t, topo, { AUTH_TOKENS: `${ADMIN}:rwxpo`, REDIS_POOL_SIZE: '2', REDIS_COMMAND_TIMEOUT_MS: '1000', REDIS_WAIT_TIMEOUT_MS: '500' })
const { kv, connections } = gw.app
const busy = (secs: number): string => `local s=tonumber(redis.call('TIME')[1]) while tonumber(redis.call('TIME')[1]) - s < ${secs} do end return 1`

async function until (what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}
await until('the gateway sees the master and both replicas', 20_000, async () => {
  const s = gw.app.topology.snapshot
  return s.masterConfirmed && s.replicas.filter(r => r.healthy).length === 2
})

/** PUT /kv: status and milliseconds. */
async function put (key: string): Promise<{ status: number; ms: number }> {
  const started = Date.now()
  const r = await fetch(`${gw.url}/kv/${key}`, { method: 'PUT', body: 'v', headers: { authorization: `Bearer ${ADMIN}` }, signal: AbortSignal.timeout(15_000) })
  await r.arrayBuffer()
  return { status: r.status, ms: Date.now() - started }
}
const command = async (cmd: string[]): Promise<{ status: number; ms: number; body: string }> => {
  const started = Date.now()
  const r = await fetch(`${gw.url}/`, { method: 'POST', body: JSON.stringify(cmd), headers: { authorization: `Bearer ${ADMIN}` }, signal: AbortSignal.timeout(15_000) })
  return { status: r.status, ms: Date.now() - started, body: await r.text() }
}
const readyz = async (): Promise<number> => (await fetch(`${gw.url}/readyz`, { signal: AbortSignal.timeout(5000) })).status
async function onNode<T> (port: number, fn: (c: Redis) => Promise<T>): Promise<T> {
  const c = topo.client(port)
  try { return await fn(c) } finally { c.disconnect() }
}
const evalCalls = async (port: number, name: string): Promise<number> =>
  Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(String(await onNode(port, async c => await c.info('commandstats'))))?.[1] ?? 0)
/** Runs of the script `sha` in a node's SLOWLOG (a 3 s loop is always logged there; PUT /kv's own EVALSHAs are not it). */
const slowRuns = async (port: number, sha: string): Promise<number> =>
  (await onNode(port, async c => await c.call('SLOWLOG', 'GET', '1000')) as Array<[unknown, unknown, unknown, Array<Buffer | string>]>)
    .filter(e => String(e[3]?.[0]).toLowerCase() === 'evalsha' && String(e[3]?.[1]) === sha).length

t.test('parked command connections cannot make a PUT /kv wait, and are closed when their commands time out', async t => {
  const master = await topo.master()
  // Both command connections open and usable first (a cold pool hands the first usable one to every waiter).
  for (let i = 0; i < 4; i++) await kv.commands([['PING']], { route: 'master' })
  await new Promise(resolve => setTimeout(resolve, 200))
  // Straight to the runner, past the endpoint's policy (which refuses blocking forms): the bulkhead
  // must hold even if a blocking command got through.
  const parked = [1, 2].map(async () => await kv.commands([['BLPOP', 'bulkhead:never', '0']], { route: 'write' }).then(() => 'answered', (e: Error) => e.message))
  await until('both command connections blocked on the master', 5000, async () =>
    /blocked_clients:2/.test(String(await onNode(master.port, async c => await c.info('clients')))))
  const puts = []
  for (let i = 0; i < 10; i++) puts.push(await put(`bulkhead:put:${i}`))
  t.ok(puts.every(p => p.status === 201), `10 PUT /kv while the command connections are parked: ${puts.map(p => p.status).join(',')}`)
  t.ok(Math.max(...puts.map(p => p.ms)) < 500, `each answered at once (max ${Math.max(...puts.map(p => p.ms))} ms)`)
  const outcomes = await Promise.all(parked)
  t.ok(outcomes.every(o => /GW_ERR|may have been applied|not confirmed/i.test(o) || o.length > 0), `the blocked commands answer after the timeout (${outcomes.join(' | ').slice(0, 160)})`)
  await until('the master no longer holds blocked clients (the connections were closed)', 3000, async () =>
    /blocked_clients:0/.test(String(await onNode(master.port, async c => await c.info('clients')))))
  t.pass('the parked connections were closed: BLPOP 0 does not hold them forever')
  const again = await command(['SET', 'bulkhead:after', '1'])
  t.equal(again.status, 200, `the command endpoint works again (${again.ms} ms)`)
})

t.test('a 3 s busy read (EVAL_RO) costs one replica, once; SCRIPT KILL goes to it; the master keeps writing', async t => {
  const master = await topo.master()
  const replicas = topo.redis.filter(r => r.port !== master.port)
  const kills: Array<{ port: number; cmd: string }> = []
  for (const r of replicas) {
    const pool = connections.existing({ host: '127.0.0.1', port: r.port })!
    const control = await pool.control(2000)
    const call = control.call.bind(control) as (...a: unknown[]) => Promise<unknown>
    Object.assign(control, { call: async (...a: unknown[]) => { kills.push({ port: r.port, cmd: a.join(' ') }); return await call(...a) } })
  }
  const before = await Promise.all(topo.redis.map(async r => await evalCalls(r.port, 'eval_ro')))
  const attack = command(['EVAL_RO', busy(3), '0'])
  await new Promise(resolve => setTimeout(resolve, 200))
  const puts = []
  while (puts.length < 8) puts.push(await put(`bulkhead:during-ro:${puts.length}`))
  const answer = await attack
  t.equal(answer.status, 503, `EVAL_RO answers 503 (${answer.body.slice(0, 140)})`)
  t.match(answer.body, /not sent to another node/, 'and says it was not sent elsewhere')
  t.ok(answer.ms < 2500, `after the command timeout, not after the 3 s loop nor a tour of the nodes (${answer.ms} ms)`)
  // The first write may wait for WAIT: the busy replica is one the write must reach until it is flagged down.
  t.ok(puts.every(p => p.status === 201), `PUT /kv on the master during the loop: ${puts.map(p => `${p.status}/${p.ms}ms`).join(' ')}`)
  t.ok(puts.slice(1).every(p => p.ms < 500), 'the master answers at once: it never ran the loop')
  await new Promise(resolve => setTimeout(resolve, 3000))
  const after = await Promise.all(topo.redis.map(async r => await evalCalls(r.port, 'eval_ro')))
  const ran = topo.redis.filter((_r, i) => after[i]! > before[i]!)
  t.equal(ran.length, 1, `one node ran it (${ran.map(r => r.port).join(',')})`)
  t.ok(ran[0] !== undefined && ran[0].port !== master.port, 'a replica, not the master')
  t.same(kills.filter(k => k.cmd === 'SCRIPT KILL').map(k => k.port), ran.map(r => r.port), 'SCRIPT KILL was sent to that replica\'s control connection')
  t.equal((await topo.master()).port, master.port, 'the sentinels kept their master')
})

t.test('a 3 s busy write (EVALSHA) on the master: writes recover within a bound, /readyz tells the truth, nothing stays broken', async t => {
  const master = await topo.master()
  // PUT /kv sends its own script by EVALSHA too: the loop's runs are told apart by its SHA in SLOWLOG.
  const sha = String(await onNode(master.port, async c => await c.script('LOAD', busy(3))))
  for (const r of topo.redis) await onNode(r.port, async c => await c.script('LOAD', busy(3)))
  const before = await Promise.all(topo.redis.map(async r => await slowRuns(r.port, sha)))
  const started = Date.now()
  const attack = command(['EVALSHA', sha, '0'])
  // Two independent probes for 20 s: /readyz every 100 ms, and PUT /kv one after another. (The loop
  // outlasts the sentinels' 1 s down-after here: a failover follows, and writes then wait until the old
  // master rejoins as a replica, ~10 s.)
  const ready: Array<{ at: number; status: number }> = []
  const puts: Array<{ from: number; to: number; ok: boolean }> = []
  const end = started + 20_000
  await Promise.all([
    (async () => {
      while (Date.now() < end) {
        const status = await readyz().catch(() => 0)
        ready.push({ at: Date.now() - started, status })
        await new Promise(resolve => setTimeout(resolve, 100))
      }
    })(),
    (async () => {
      while (Date.now() < end) {
        const from = Date.now() - started
        const p = await put(`bulkhead:during-rw:${puts.length}`)
        puts.push({ from, to: Date.now() - started, ok: p.status >= 200 && p.status < 300 })
        await new Promise(resolve => setTimeout(resolve, 50))
      }
    })()
  ])
  const answer = await attack
  const failed = puts.filter(p => !p.ok)
  const lastFailure = failed.length === 0 ? 0 : failed[failed.length - 1]!.to
  t.comment(`EVALSHA answered ${answer.status} after ${answer.ms} ms; ${failed.length} of ${puts.length} writes failed, the last at ${lastFailure} ms; slowest write ${Math.max(...puts.map(p => p.to - p.from))} ms; new master :${(await topo.master()).port} (was :${master.port})`)
  t.comment(`/readyz: ${ready.filter((r, i) => i === 0 || ready[i - 1]!.status !== r.status).map(r => `${r.status} from ${r.at} ms`).join(', ')}`)
  t.ok(answer.status >= 500 && answer.ms < 5000, `the loop is answered after the timeout (${answer.status}, ${answer.ms} ms)`)
  t.ok(lastFailure < 15_000, `/kv writes recovered within 15 s (last failure at ${lastFailure} ms)`)
  t.ok(ready.some(r => r.status === 503 && r.at < 4000), '/readyz answered 503 while the master could not take writes')
  // While writes fail (a failed write started and ended in the window), /readyz says 503 a second in.
  const lying = ready.filter(r => r.status === 200 && failed.some(p => p.from + 1000 <= r.at && r.at <= p.to))
  t.same(lying, [], '/readyz never said ready while a write was failing')
  // Writes work again once none fails or waits (a held write answers late, but answers 201).
  const lastStall = Math.max(lastFailure, ...puts.filter(p => p.to - p.from > 1000).map(p => p.to))
  const late = ready.filter(r => r.at > Math.max(lastStall + 2000, 7000))
  t.ok(late.length > 0 && late.every(r => r.status === 200), `/readyz says ready once writes work again without waiting (from ${lastStall} ms on)`)
  const after = await Promise.all(topo.redis.map(async r => await slowRuns(r.port, sha)))
  t.same(topo.redis.filter((_r, i) => after[i]! > before[i]!).map(r => r.port), [master.port], 'only the master ran the loop')
  const tail = []
  for (let i = 0; i < 20; i++) tail.push({ put: (await put(`bulkhead:tail:${i}`)).status, ready: await readyz() })
  t.ok(tail.every(s => s.put === 201 && s.ready === 200), `afterwards every write works and /readyz says ready: ${JSON.stringify(tail.filter(s => s.put !== 201 || s.ready !== 200))}`)
  await topo.waitConverged()
})
