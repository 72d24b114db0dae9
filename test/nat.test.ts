/**
 * Address translation (REDIS_NAT_MAP) for sentinels that report addresses the gateway cannot reach.
 *
 * The topology's redis nodes announce 127.0.0.2:<port> (replica-announce-ip; the sentinels monitor
 * the master there). An in-process forwarder on 127.0.0.2:<port> serves only connections from
 * 127.0.0.3, the source address the nodes and sentinels bind (`bind-source-addr`): the sentinels
 * and replicas reach every node at the announced address, a client connecting from 127.0.0.1 (the
 * gateway) is reset. The nodes themselves listen on 127.0.0.1:<port> only.
 *
 * Without the map the gateway never gets ready; with `127.0.0.2:<port>=127.0.0.1:<port>` it serves
 * writes and replica reads, /topology names the announced addresses, and the rate limiter's own
 * sentinel-mode client (ioredis natMap) counts on the master.
 */
import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import t from 'tap'
import { ConfigError, loadConfig } from '../src/config.js'
import { clientOptions } from '../src/redis/connections.js'
import { ioredisNatMap, parseNatMap, translate } from '../src/redis/nat.js'
import { limiterCounts, pollUntil, putThenReadFromReplicas } from './helpers/kv-client.js'
import { startInProcess, type InProcessGateway } from './helpers/gateway.js'
import { topologyFor } from './helpers/topology.js'

const ANNOUNCED = '127.0.0.2'
const SOURCE = '127.0.0.3'
const SENTINELS = '127.0.0.1:1,127.0.0.1:2,127.0.0.1:3'

/** Whether a TCP client from 127.0.0.1 gets a byte back from `host:port` for a PING. */
async function answersPing (host: string, port: number): Promise<boolean> {
  return await new Promise<boolean>(resolve => {
    const s = connect({ host, port })
    const done = (v: boolean): void => { s.destroy(); clearTimeout(timer); resolve(v) }
    const timer = setTimeout(() => done(false), 2000)
    s.on('connect', () => s.write('PING\r\n'))
    s.on('data', d => done(d.toString().startsWith('+PONG')))
    s.on('error', () => done(false))
    s.on('close', () => done(false))
  })
}

t.test('REDIS_NAT_MAP parsing', async t => {
  const m = parseNatMap(' 10.0.0.5:6379=127.0.0.1:7001, 10.0.0.6:6379 = redis-b.example:7002,[fd00::1]:6379=[::1]:7003 ')
  if (typeof m === 'string') throw new Error(m)
  t.same(translate(m, { host: '10.0.0.5', port: 6379 }), { host: '127.0.0.1', port: 7001 })
  t.same(translate(m, { host: '10.0.0.6', port: 6379 }), { host: 'redis-b.example', port: 7002 })
  t.same(translate(m, { host: 'fd00::1', port: 6379 }), { host: '::1', port: 7003 }, 'IPv6 keys are written in brackets, matched as sentinels report them')
  t.same(translate(m, { host: '10.0.0.7', port: 6379 }), { host: '10.0.0.7', port: 6379 }, 'an address not in the map is used as is')
  t.same(ioredisNatMap(m)?.('10.0.0.5:6379'), { host: '127.0.0.1', port: 7001 }, 'the ioredis natMap form')
  t.equal(ioredisNatMap(m)?.('10.0.0.7:6379'), null)
  for (const bad of ['10.0.0.5:6379', '10.0.0.5=127.0.0.1:1', 'a:1=b:2=c:3', 'a:1=b:0', 'a:1=b:2,a:1=c:3', ' , ']) {
    t.type(parseNatMap(bad), 'string', `${JSON.stringify(bad)} is refused with a reason`)
  }
  t.equal(loadConfig({ REDIS_SENTINELS: SENTINELS }).natMap.size, 0, 'unset: no translation')
  t.throws(() => loadConfig({ REDIS_SENTINELS: SENTINELS, REDIS_NAT_MAP: 'nonsense' }), { code: 'GW_ERR_CONFIG_INVALID' })
  t.throws(() => loadConfig({ REDIS_SENTINELS: SENTINELS, REDIS_NAT_MAP: 'nonsense' }), { message: /^Invalid environment variable REDIS_NAT_MAP: / })
  // Applied where connections are made: the announced address is dialed translated, TLS checked against the dialed host.
  const o = clientOptions({ host: '10.0.0.6', port: 6379 }, { connectTimeoutMs: 1000, name: 'x', natMap: m, tls: {} })
  t.match(o, { host: 'redis-b.example', port: 7002, tls: { servername: 'redis-b.example' } })
})

t.test('sentinels announcing unreachable addresses: no service without the map, full service with it', async t => {
  // The forwarder runs in this busy process: a generous down-after keeps a stall from looking like a
  // dead master to the sentinels (this test fails over on purpose, with SENTINEL FAILOVER).
  const topo = await topologyFor(t, { nat: { announceHost: ANNOUNCED, sourceHost: SOURCE }, downAfterMs: 5000 })
  const ports = topo.redis.map(r => r.port)
  const master = await topo.master()
  t.same(master, { host: ANNOUNCED, port: ports[0] }, `the sentinels report the master at ${ANNOUNCED}`)
  t.equal(topo.announceHost, ANNOUNCED)
  for (const port of ports) {
    t.equal(await answersPing(ANNOUNCED, port), false, `${ANNOUNCED}:${port} does not serve a client from 127.0.0.1`)
    t.equal(await answersPing('127.0.0.1', port), true, `127.0.0.1:${port} does`)
  }

  const noMap = await startInProcess(t, topo, { REDIS_CONNECT_TIMEOUT_MS: '1000', REQUEST_RETRY_BUDGET_MS: '500' })
  const natMap = ports.map(p => `${ANNOUNCED}:${p}=127.0.0.1:${p}`).join(',')
  const gw = await startInProcess(t, topo, { REDIS_NAT_MAP: natMap, RATE_LIMIT_MAX: '100000' })

  const ready = (await pollUntil(15_000, 200, async () => (await fetch(`${gw.url}/readyz`)).status === 200 ? true : undefined)).value
  t.ok(ready, 'with REDIS_NAT_MAP the gateway becomes ready')
  const key = `nat:${process.pid}:${Date.now()}`
  await putThenReadFromReplicas(t, gw.url, key, 'translated', 'with REDIS_NAT_MAP')

  const view = await (await fetch(`${gw.url}/topology`)).json() as { master: { host: string; port: number; confirmed: boolean }; replicas: Array<{ host: string; port: number; healthy: boolean; attached: boolean }> }
  t.match(view.master, { host: ANNOUNCED, port: ports[0], confirmed: true }, '/topology names the master by its announced address')
  t.same(view.replicas.map(r => `${r.host}:${r.port}`).sort(), ports.slice(1).map(p => `${ANNOUNCED}:${p}`).sort(), 'and the replicas')
  t.ok(view.replicas.every(r => r.healthy && r.attached), 'both replicas healthy and attached (sentinel and master INFO addresses match)')
  t.same(gw.app.connections.dialAddress({ host: ANNOUNCED, port: ports[0]! }), { host: '127.0.0.1', port: ports[0] }, 'connections dial the translated address')

  t.ok(await limiterCounts(gw.url, key), 'the rate limiter (ioredis natMap) counts on the master')

  // The gateway without the map had all this time to connect.
  const res = await fetch(`${noMap.url}/readyz`)
  const body = await res.text()
  t.equal(res.status, 503, `without REDIS_NAT_MAP: /readyz 503 (${body})`)
  const noMapView = await (await fetch(`${noMap.url}/topology`)).json() as { master: { host: string; confirmed: boolean } | null; sentinels: Array<{ reachable: boolean }> }
  t.ok(noMapView.sentinels.every(s => s.reachable), 'it reaches the sentinels')
  t.match(noMapView.master, { host: ANNOUNCED, confirmed: false }, 'which name a master it cannot reach')
  const w = await fetch(`${noMap.url}/kv/${encodeURIComponent(key)}`, { method: 'PUT', body: 'x', headers: { 'content-type': 'application/octet-stream' } })
  t.ok(w.status >= 500, `a write fails (${w.status})`)
  await w.arrayBuffer()

  // A failover: the new master is announced too, and the gateway follows it through the map.
  const fo = await topo.failover().catch((err: Error) => {
    // Show why (e.g. -failover-abort-no-good-slave) before failing.
    for (const p of [...topo.sentinels, ...topo.redis]) {
      t.comment(`--- ${p.role} :${p.port}\n${readFileSync(`${p.dir}/${p.role}.log`, 'utf8').split('\n').slice(-15).join('\n')}`)
    }
    throw err
  })
  t.comment(`failover :${fo.from} -> :${fo.to} in ${fo.ms} ms`)
  const after = (await pollUntil(20_000, 200, async () => {
    const v = await (await fetch(`${gw.url}/topology`)).json() as { master: { host: string; port: number; confirmed: boolean } }
    return v.master.port === fo.to && v.master.confirmed ? v : undefined
  })).value
  t.match(after?.master, { host: ANNOUNCED, port: fo.to, confirmed: true }, 'the gateway follows the failover to the new announced master')
  const put2 = (await pollUntil(10_000, 200, async () => {
    const r = await fetch(`${gw.url}/kv/${encodeURIComponent(key)}`, { method: 'PUT', body: 'after failover', headers: { 'content-type': 'application/octet-stream' } })
    await r.arrayBuffer()
    return r.status === 200 ? r.status : undefined
  })).value
  t.equal(put2, 200, 'and writes to it')
})
