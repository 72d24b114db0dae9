/**
 * Issue 11, requirements 4 and 5, on loopback: a write that replicas cannot confirm is not a fault
 * of the master (its breaker stays closed, strong reads answer), a replica whose own link is down
 * is not read even while the master cannot be asked, and the pure rules behind both.
 */
import type { Redis } from 'ioredis'
import t from 'tap'
import { pino } from 'pino'
import type { Config } from '../src/config.js'
import type { Connections } from '../src/redis/connections.js'
import type { ReplicationInfo } from '../src/redis/parse.js'
import { deafReason, parseSelfReport, ReplicaLinks, selfReason, type SelfReport } from '../src/replica-links.js'
import { replicaState } from '../src/replica-state.js'
import { catchingUp } from '../src/sentinel/refresh-snapshot.js'
import { emptySnapshot, type ReplicaState } from '../src/topology-types.js'
import { startInProcess } from './helpers/gateway.js'
import { KvClient, pollUntil } from './helpers/kv-client.js'
import { topologyFor, type NodeProc } from './helpers/topology.js'

t.test('a replica is readable only by its own account: attached, in sync, not loading', async t => {
  const up = parseSelfReport('# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nmaster_sync_in_progress:0\r\n# Persistence\r\nloading:0\r\n')
  t.equal(selfReason(up), undefined, 'link up, no sync, not loading: readable')
  t.equal(selfReason(null), 'does not answer INFO', 'no answer: not readable')
  t.equal(selfReason({ ...up, linkUp: false }), 'its link to the master is down', 'detached')
  t.equal(selfReason({ ...up, syncing: true }), 'resyncing from the master', 'mid full resync')
  t.equal(selfReason({ ...up, loading: true }), 'loading its data set', 'loading an RDB')
  t.equal(selfReason({ ...up, role: 'master' }), 'reports role master', 'promoted or never converted')
  const following = parseSelfReport('role:slave\r\nmaster_host:10.0.0.3\r\nmaster_port:6379\r\nmaster_link_status:up\r\nmaster_sync_in_progress:0\r\nloading:0\r\n')
  t.equal(following.master, '10.0.0.3:6379', 'the master it follows, from its own INFO')
  t.equal(selfReason(following, '10.0.0.3:6379'), undefined, 'it follows the master: readable')
  t.equal(selfReason(following, '10.0.0.9:6379'), 'replicates from 10.0.0.3:6379, not the master', 'it follows another node (an old master not yet converted): not readable')
  t.equal(deafReason(2), undefined, 'an ack 2 s old is within the bound (acks come every second)')
  t.equal(deafReason(5), 'master hears no ack for 5 s', 'beyond the bound: the master cannot hear the replica')
  t.equal(deafReason(null), undefined, 'not attached: nothing to say about acks')
})

t.test('while the master cannot be asked, a replica following another node is not readable', async t => {
  const report = (master: string): SelfReport => ({ role: 'slave', linkUp: true, syncing: false, loading: false, master })
  const links = (r: SelfReport): ReplicaLinks => ({ report: () => r, linkNote: () => undefined }) as unknown as ReplicaLinks
  const v = { key: '10.0.0.2:6379', host: '10.0.0.2', port: 6379, downByMajority: false, linkOk: true, flags: [] }
  const M = '10.0.0.3:6379'
  const info: ReplicationInfo = { role: 'master', masterReplOffset: 100, replid: 'a', replid2: '0', secondReplOffset: -1, replicas: [{ host: '10.0.0.2', port: 6379, state: 'online', offset: 100, lag: 0 }] }
  t.equal(replicaState(v, undefined, null, links(report(M)), 0, M).healthy, true, 'master not asked, the replica follows it: readable (possibly stale)')
  const other = replicaState(v, undefined, null, links(report('10.0.0.4:6379')), 0, M)
  t.equal(other.healthy, false, 'master not asked, the replica follows an old master (split brain): not readable')
  t.equal(other.reason, 'replicates from 10.0.0.4:6379, not the master')
  // The master lists it online: attached, whatever name the replica knows the master by (a host name).
  t.equal(replicaState(v, info.replicas[0], info, links(report('redis-master:6379')), 0, M).healthy, true, 'attached by the master\'s own INFO: readable')
  t.equal(replicaState(v, undefined, info, links(report(M)), 0, M).reason, 'not attached to the master', 'the master does not list it: not readable')
})

t.test('a replica that becomes readable must hold the last acknowledged write first', async t => {
  const rep = (key: string, healthy: boolean, offset: number | null): ReplicaState =>
    ({ key, host: key.split(':')[0]!, port: Number(key.split(':')[1]), healthy, attached: offset !== null, lagBytes: 0, lagSeconds: 0, offset, sentinelFlags: [] })
  const prev = { ...emptySnapshot('mymaster'), replicas: [rep('10.0.0.2:6379', true, 90), rep('10.0.0.3:6379', false, null)] }
  const now = [rep('10.0.0.2:6379', true, 95), rep('10.0.0.3:6379', true, 99)]
  const out = catchingUp(now, prev, 100)
  t.equal(out[0]!.healthy, true, 'readable at the last refresh: stays readable (writes counted it)')
  t.equal(out[1]!.healthy, false, 'newly readable, behind the last acknowledged write: not yet')
  t.equal(out[1]!.reason, 'catching up: offset 99 behind the last acknowledged write (100)')
  t.equal(catchingUp([rep('10.0.0.3:6379', true, 100)], prev, 100)[0]!.healthy, true, 'holds it: readable')
  t.equal(catchingUp(now, prev, null)[1]!.healthy, true, 'no write acknowledged on this master: nothing to hold')
})

t.test('a link the master cannot hear is reported until it is heard again, and closed at most once per 3 s', async t => {
  const sent: string[] = []
  let linkUp = true
  const client = {
    info: async () => `role:slave\r\nmaster_link_status:${linkUp ? 'up' : 'down'}\r\nmaster_sync_in_progress:0\r\nloading:0\r\n`,
    call: async (...args: string[]) => { sent.push(args.join(' ')); return 1 }
  }
  const connections = { get: () => ({ control: async () => client }) } as unknown as Connections
  const links = new ReplicaLinks({ commandTimeoutMs: 500, connectTimeoutMs: 500 } as Config, connections, pino({ level: 'silent' }))
  const r1 = { host: '10.0.0.2', port: 6379 }
  await links.probe([r1])
  t.equal(links.linkNote(r1, 1), undefined, 'heard within the bound: nothing to say')
  t.equal(links.linkNote(r1, 4), 'master hears no ack for 4 s', 'the master cannot hear it')
  t.equal(links.linkNote(r1, 5), 'master hears no ack for 5 s', 'still deaf')
  await new Promise(resolve => setImmediate(resolve))
  t.same(sent, ['CLIENT KILL TYPE master'], 'its replication link closed once (the replica reconnects with a fresh socket)')
  linkUp = false
  await links.probe([r1])
  t.match(links.linkNote(r1, null), /^master heard no ack for \d+ s; reconnecting$/, 'while it reconnects: still reported, not "unreachable"')
  linkUp = true
  await links.probe([r1])
  t.equal(links.linkNote(r1, 0), undefined, 'attached and heard again: the note clears')
  t.equal(links.kicks, 1, 'one kick')
})

const topo = await topologyFor(t, { downAfterMs: 15_000, failoverTimeoutMs: 20_000 })
const gw = new KvClient((await startInProcess(t, topo, { REDIS_WAIT_TIMEOUT_MS: '300', REQUEST_RETRY_BUDGET_MS: '1500' })).url)
const P = `live:${process.pid}:`

async function withClient<T> (port: number, fn: (c: Redis) => Promise<T>): Promise<T> {
  const c = topo.client(port)
  try { return await fn(c) } finally { await c.quit().catch(() => {}) }
}
const replicaProcs = async (): Promise<NodeProc[]> => {
  const m = await topo.master()
  return topo.redis.filter(p => p.alive && p.port !== m.port)
}

t.test('a WAIT that replicas cannot answer does not open the master\'s breaker: strong reads still answer', async t => {
  t.equal((await gw.put(`${P}before`, 'v')).status, 201, 'a PUT before the freeze')
  const frozen = await replicaProcs()
  for (const p of frozen) await topo.kill(p, 'SIGSTOP')
  t.teardown(async () => { for (const p of frozen) await topo.kill(p, 'SIGCONT') })
  const m = await topo.master()
  const node = `${m.host}:${m.port}`
  // Many writes at once: their WAITs queue on the shared connections and time out together.
  const statuses = await Promise.all(Array.from({ length: 40 }, async (_, i) => (await gw.put(`${P}w${i}`, 'x')).status))
  t.ok(statuses.every(s => s === 503 || s === 504), `no write acknowledged without its replicas (${[...new Set(statuses)].join(',')})`)
  const breaker = (await gw.topology()).breakers.find(b => b.node === node)
  t.not(breaker?.state, 'open', `the master's breaker is not open (${breaker?.state ?? 'never used'})`)
  const strong = await Promise.all(Array.from({ length: 10 }, async () => await gw.get(`${P}before`, 'consistency=strong')))
  t.same(strong.map(r => r.status), Array(10).fill(200), `strong reads of the master answer 200 while its replicas cannot confirm (${strong.find(r => r.status !== 200)?.text ?? ''})`)
  for (const p of frozen) await topo.kill(p, 'SIGCONT')
  const back = await pollUntil(10_000, 100, async () => (await gw.put(`${P}after`, 'v')).status === 201 ? true : undefined)
  t.ok(back.value, `writes are acknowledged again ${back.ms} ms after the replicas resume`)
  await topo.waitConverged()
})

t.test('a replica whose own link is down is not read, even while the master cannot be asked', async t => {
  const [r1, r2] = await replicaProcs()
  const m = await topo.master()
  const key = `${P}only-on-r2`
  // R1 detached (its link points at a port nobody listens on), then a key only the master and R2 hold.
  await withClient(r1!.port, async c => await c.call('REPLICAOF', '127.0.0.1', '1'))
  const restore = async (): Promise<void> => {
    await topo.kill(topo.redis.find(p => p.port === m.port)!, 'SIGCONT')
    await withClient(r1!.port, async c => await c.call('REPLICAOF', m.host, String(m.port)))
  }
  t.teardown(restore)
  await withClient(m.port, async c => {
    await c.set(key, 'v')
    t.ok(await c.wait(1, 2000) >= 1, 'the key is on R2')
  })
  t.equal(await withClient(r1!.port, async c => await c.exists(key)), 0, 'R1 lacks the key')
  // The master frozen: the gateway cannot ask it who is attached.
  await topo.kill(topo.redis.find(p => p.port === m.port)!, 'SIGSTOP')
  const seen = await pollUntil(5000, 100, async () => {
    const r = (await gw.topology()).replicas.find(x => x.port === r1!.port)
    return r !== undefined && !r.healthy ? r : undefined
  })
  t.match(seen.value?.reason, /link to the master is down/, `/topology: R1 not readable by its own account (${seen.value?.reason ?? 'still healthy'})`)
  const reads = await Promise.all(Array.from({ length: 30 }, async () => (await gw.get(key)).status))
  t.same(reads, Array(30).fill(200), 'every eventual read of the key answers 200 (R2; never R1)')
  t.ok((await gw.topology()).replicas.find(x => x.port === r2!.port)?.healthy, 'R2 stays readable')
  await restore()
  await topo.waitConverged()
})
