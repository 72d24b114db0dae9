/**
 * Cluster mode, group commit across hash slots (issue 16, bench): concurrent PUTs of keys in
 * different slots of one shard share their write connection's ROLE + WAIT, as all writes do in
 * Sentinel mode (one KvService per slot, one group-commit state per connection: src/kv.ts). Before,
 * each slot had its own, and every such write paid a ROLE + WAIT of its own. The guarantee is
 * unchanged: every write is acknowledged with the shard's replica counted, and is on that replica.
 */
import calculateSlot from 'cluster-key-slot'
import { connect, type Socket } from 'node:net'
import t from 'tap'
import { clusterFor, startClusterGateway } from './helpers/cluster.js'
import { commandCalls, KvClient } from './helpers/kv-client.js'

const WRITES = 40

const cluster = await clusterFor(t)
const gw = await startClusterGateway(t, cluster, { NEAR_CACHE: 'false' })
const api = new KvClient(gw.url)
const view = await cluster.view()
const master = view.find(n => n.role === 'master' && n.slots.length > 0)!
const replica = view.find(n => n.masterId === master.id)!

/**
 * PUTs on connections of their own, opened first and then written in one go: the gateway reads them
 * in the same event-loop turn (a client that sends them one by one lets each write's WAIT answer before
 * the next write arrives, and nothing is left to share).
 */
async function burst (puts: Array<{ key: string; value: string }>): Promise<Array<{ status: number; json: unknown }>> {
  const { hostname, port } = new URL(gw.url)
  const sockets = await Promise.all(puts.map(async () => await new Promise<Socket>((resolve, reject) => {
    const s = connect(Number(port), hostname, () => resolve(s))
    s.once('error', reject)
  })))
  const answers = sockets.map(async s => await new Promise<string>((resolve, reject) => {
    let text = ''
    s.setEncoding('utf8')
    s.on('data', (d: string) => { text += d })
    s.once('end', () => resolve(text))
    s.once('error', reject)
    s.setTimeout(10_000, () => s.destroy(new Error('no answer in 10 s')))
  }))
  puts.forEach(({ key, value }, i) => sockets[i]!.write(`PUT /kv/${encodeURIComponent(key)} HTTP/1.1\r\nHost: ${hostname}\r\n` +
    `Content-Type: application/octet-stream\r\nContent-Length: ${Buffer.byteLength(value)}\r\nConnection: close\r\n\r\n${value}`))
  return (await Promise.all(answers)).map(text => {
    const body = text.slice(text.indexOf('\r\n\r\n') + 4)
    return { status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1]), json: JSON.parse(body) as unknown }
  })
}

t.test('writes of different slots of one shard share ROLE + WAIT, each acknowledged and on the replica', async t => {
  // WRITES keys served by one master, each in a slot of its own.
  const keys: string[] = []
  const slots = new Set<number>()
  // The master's slot ranges as CLUSTER NODES lists them ("0-5460", or a single slot).
  const ranges = master.slots.map(r => r.split('-').map(Number)).map(([a, b]) => [a!, b ?? a!] as const)
  for (let i = 0; keys.length < WRITES + 1 && i < 100_000; i++) {
    const key = `gc:${process.pid}:${i}`
    const slot = calculateSlot(key)
    if (slots.has(slot) || !ranges.some(([a, b]) => slot >= a && slot <= b)) continue
    slots.add(slot)
    keys.push(key)
  }
  t.equal(keys.length, WRITES + 1, `${WRITES + 1} keys in as many slots of the master :${master.port}`)
  // One write first: the master's write connections are open and hold the script.
  t.equal((await api.put(keys.shift()!, 'warm-up')).status, 201, 'a first write on the shard')

  const mc = cluster.client(master.port)
  t.teardown(() => { mc.disconnect() })
  const waits0 = await commandCalls(mc, 'wait')
  // The replica stopped for a moment: the first WAIT on each write connection blocks, and the
  // writes that arrive meanwhile can only share the next one (with a WAIT of their own each, 40 of 40).
  const replicaProc = cluster.nodes.find(n => n.port === replica.port)!
  await cluster.kill(replicaProc, 'SIGSTOP')
  t.teardown(async () => { await cluster.kill(replicaProc, 'SIGCONT') })
  const sent = burst(keys.map(k => ({ key: k, value: `v:${k}` })))
  await new Promise(resolve => setTimeout(resolve, 250))
  await cluster.kill(replicaProc, 'SIGCONT')
  const answers = await sent
  const waits = await commandCalls(mc, 'wait') - waits0
  t.same(answers.map(a => a.status), keys.map(() => 201), 'every PUT answered 201')
  t.same(answers.map(a => (a.json as { replicas?: number }).replicas), keys.map(() => 1), 'each confirmed by the shard\'s replica')
  t.ok(waits >= 1 && waits <= WRITES / 4, `${WRITES} concurrent writes of ${WRITES} slots shared WAITs: ${waits} WAIT(s) on the master`)

  const rc = cluster.client(replica.port)
  t.teardown(() => { rc.disconnect() })
  await rc.call('READONLY')
  const onReplica = await Promise.all(keys.map(async k => await rc.get(k)))
  t.same(onReplica, keys.map(k => `v:${k}`), 'every acknowledged write is on the replica')
})
