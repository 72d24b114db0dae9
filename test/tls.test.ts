/**
 * TLS to the Redis nodes and to the sentinels, separately configured.
 *
 * A throwaway CA signs two server certificates made with `openssl` in a temp dir: the redis nodes'
 * (SAN IP:127.0.0.1 only) and the sentinels' (SAN DNS:sentinel.test only). A real topology listens
 * with `tls-port` only (`port 0`): nodes and sentinels replicate and talk to each other over TLS.
 * The gateway reaches the sentinels by IP and checks their certificate under
 * REDIS_SENTINEL_TLS_SERVERNAME=sentinel.test, and each node under that node's own host: were the
 * sentinel name reused for the nodes (ioredis #1459/#1832), no node connection could verify.
 * Without the CA (or without the servername) verification fails: the gateway is not ready.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { ConfigError, loadConfig } from '../src/config.js'
import { tlsOptionsFor, tlsOptionsForAnyHost } from '../src/redis/tls.js'
import { limiterCounts, pollUntil, putThenReadFromReplicas } from './helpers/kv-client.js'
import { startInProcess, type InProcessGateway } from './helpers/gateway.js'
import { topologyFor } from './helpers/topology.js'
import { newClient } from './helpers/topology-procs.js'

const SENTINELS = '127.0.0.1:1,127.0.0.1:2,127.0.0.1:3'
const SENTINEL_NAME = 'sentinel.test'

function hasOpenssl (): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

interface Pki { dir: string; ca: string; nodeCert: string; nodeKey: string; sentinelCert: string; sentinelKey: string; otherCa: string }

/** A CA, a node certificate (IP:127.0.0.1), a sentinel certificate (DNS:sentinel.test), and an unrelated CA. */
function makePki (dir: string): Pki {
  const f = (name: string): string => path.join(dir, name)
  const ssl = (...args: string[]): void => { execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] }) }
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  const makeCa = (name: string, cn: string): void => ssl('req', '-x509', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.crt`),
    '-days', '2', '-subj', `/CN=${cn}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
  makeCa('ca', 'skv test CA')
  makeCa('other-ca', 'some other CA')
  const leaf = (name: string, san: string): void => {
    ssl('req', '-new', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${name}`)
    writeFileSync(f(`${name}.ext`), [`subjectAltName=${san}`, 'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth,clientAuth', ''].join('\n'))
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial',
      '-out', f(`${name}.crt`), '-days', '2', '-extfile', f(`${name}.ext`))
  }
  leaf('node', 'IP:127.0.0.1')
  leaf('sentinel', `DNS:${SENTINEL_NAME}`)
  return { dir, ca: f('ca.crt'), nodeCert: f('node.crt'), nodeKey: f('node.key'), sentinelCert: f('sentinel.crt'), sentinelKey: f('sentinel.key'), otherCa: f('other-ca.crt') }
}

const readyStatus = async (gw: InProcessGateway): Promise<number> => (await fetch(`${gw.url}/readyz`)).status

if (!hasOpenssl()) {
  t.fail('openssl is not on PATH: the TLS test makes its certificates with it (apt-get install -y openssl)')
} else {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'skv-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const pki = makePki(dir)

  t.test('config: files are read once, a bad file is a ConfigError naming its variable', async t => {
    const c = loadConfig({ REDIS_SENTINELS: SENTINELS, REDIS_TLS: 'true', REDIS_TLS_CA_FILE: pki.ca, REDIS_SENTINEL_TLS: 'true', REDIS_SENTINEL_TLS_SERVERNAME: SENTINEL_NAME })
    t.ok(c.redisTls?.ca?.toString().includes('BEGIN CERTIFICATE'), 'the node CA is read')
    t.same(c.sentinelTls?.ca, c.redisTls?.ca, 'the sentinels fall back to REDIS_TLS_CA_FILE')
    t.equal(c.sentinelTls?.servername, SENTINEL_NAME)
    t.equal(c.redisTls?.servername, undefined, 'the sentinel servername is not the nodes\'')

    const off = loadConfig({ REDIS_SENTINELS: SENTINELS })
    t.equal(off.redisTls, undefined, 'TLS is off by default')
    t.equal(off.sentinelTls, undefined)

    const sep = loadConfig({ REDIS_SENTINELS: SENTINELS, REDIS_SENTINEL_TLS: 'true', REDIS_SENTINEL_TLS_CA_FILE: pki.otherCa, REDIS_TLS_CA_FILE: pki.ca })
    t.equal(sep.redisTls, undefined, 'sentinel TLS alone leaves the nodes on plain TCP')
    t.match(sep.warnings.join('\n'), /REDIS_TLS_CA_FILE ignored: REDIS_TLS is not true/, 'a node file without REDIS_TLS is a warning')
    t.same(sep.sentinelTls?.ca, readFileSync(pki.otherCa), 'REDIS_SENTINEL_TLS_CA_FILE wins over REDIS_TLS_CA_FILE')

    const bad: Array<[string, Record<string, string>]> = [
      ['REDIS_TLS_CA_FILE', { REDIS_TLS: 'true', REDIS_TLS_CA_FILE: path.join(dir, 'missing.pem') }],
      ['REDIS_TLS_CA_FILE', { REDIS_TLS: 'true', REDIS_TLS_CA_FILE: dir }],
      ['REDIS_TLS_CA_FILE', { REDIS_TLS: 'true', REDIS_TLS_CA_FILE: path.join(dir, 'node.ext') }],
      ['REDIS_TLS_KEY_FILE', { REDIS_TLS: 'true', REDIS_TLS_CERT_FILE: pki.nodeCert }],
      ['REDIS_TLS_KEY_FILE', { REDIS_TLS: 'true', REDIS_TLS_CERT_FILE: pki.nodeCert, REDIS_TLS_KEY_FILE: path.join(dir, 'nope.key') }],
      ['REDIS_SENTINEL_TLS_CA_FILE', { REDIS_SENTINEL_TLS: 'true', REDIS_SENTINEL_TLS_CA_FILE: path.join(dir, 'missing.pem') }],
      ['REDIS_TLS', { REDIS_TLS: 'yes' }]
    ]
    for (const [variable, env] of bad) {
      let err: unknown
      try { loadConfig({ REDIS_SENTINELS: SENTINELS, ...env }) } catch (e) { err = e }
      t.ok(err instanceof ConfigError, `${JSON.stringify(env)}: ConfigError`)
      t.match((err as Error | undefined)?.message ?? '', new RegExp(`^Invalid environment variable ${variable}: [^\\n]+$`), `names ${variable}, one line: ${(err as Error | undefined)?.message}`)
    }
  })

  t.test('tls options: servername is the dialed host, never a fixed one unless configured', async t => {
    const s = { ca: Buffer.from('x') }
    t.equal(tlsOptionsFor('127.0.0.1', s).servername, undefined, 'an IP: no SNI, checked against the IP SAN')
    t.equal(tlsOptionsFor('redis-2.internal', s).servername, 'redis-2.internal', 'a host name: that host')
    t.equal(tlsOptionsFor('redis-2.internal', { ...s, servername: 'fixed' }).servername, 'fixed', 'an explicit override wins')
    t.equal(tlsOptionsForAnyHost(s).servername, undefined, 'the sentinel-mode client\'s options name no server')
    t.equal(tlsOptionsFor('::1', s).rejectUnauthorized, true)
  })

  t.test('a TLS-only topology: the gateway serves over TLS, and refuses unverifiable servers', async t => {
    const t0 = Date.now()
    // No failover is wanted here: a generous down-after keeps slow TLS handshakes under load from causing one.
    const topo = await topologyFor(t, {
      downAfterMs: 5000,
      tls: { certFile: pki.nodeCert, keyFile: pki.nodeKey, caFile: pki.ca, sentinelCertFile: pki.sentinelCert, sentinelKeyFile: pki.sentinelKey, sentinelServername: SENTINEL_NAME }
    })
    t.comment(`TLS topology ready in ${Date.now() - t0} ms`)

    // Plain TCP is off everywhere: a non-TLS client gets nowhere.
    const plain = newClient(topo.redis[0]!.port, undefined, true)
    await t.rejects(plain.ping(), 'a plain-TCP client cannot talk to a TLS-only node')
    plain.disconnect()

    const tlsEnv = {
      REDIS_TLS: 'true',
      REDIS_TLS_CA_FILE: pki.ca,
      REDIS_SENTINEL_TLS: 'true',
      REDIS_SENTINEL_TLS_SERVERNAME: SENTINEL_NAME,
      RATE_LIMIT_MAX: '100000'
    }
    const gw = await startInProcess(t, topo, tlsEnv)
    const ready = (await pollUntil(15_000, 200, async () => (await readyStatus(gw)) === 200 ? true : undefined)).value
    t.ok(ready, 'the TLS gateway becomes ready')

    const key = `tls:${process.pid}:${Date.now()}`
    await putThenReadFromReplicas(t, gw.url, key, 'over tls', 'over TLS (replicas replicating over TLS)')
    const topoView = await (await fetch(`${gw.url}/topology`)).json() as { master: { port: number; confirmed: boolean }; replicas: Array<{ healthy: boolean }>; sentinels: Array<{ reachable: boolean }> }
    t.equal(topoView.master.confirmed, true)
    t.equal(topoView.replicas.filter(r => r.healthy).length, 2, 'two healthy replicas')
    t.ok(topoView.sentinels.every(s => s.reachable), 'every sentinel reachable over TLS')

    // The rate limiter's own sentinel-mode ioredis client (sentinelTLS + tls) counts on the master.
    t.ok(await limiterCounts(gw.url, key), 'the rate limiter counts over TLS')

    // Verification is on: each of these gateways must stay not ready.
    const refused: Array<[string, Record<string, string>]> = [
      ['no CA at all', { REDIS_TLS: 'true', REDIS_SENTINEL_TLS: 'true', REDIS_SENTINEL_TLS_SERVERNAME: SENTINEL_NAME }],
      ['the sentinels verify, the nodes have no CA', { REDIS_TLS: 'true', REDIS_SENTINEL_TLS: 'true', REDIS_SENTINEL_TLS_CA_FILE: pki.ca, REDIS_SENTINEL_TLS_SERVERNAME: SENTINEL_NAME }],
      ['the nodes\' CA is another one', { REDIS_TLS: 'true', REDIS_TLS_CA_FILE: pki.otherCa, REDIS_SENTINEL_TLS: 'true', REDIS_SENTINEL_TLS_CA_FILE: pki.ca, REDIS_SENTINEL_TLS_SERVERNAME: SENTINEL_NAME }],
      ['no servername: the sentinel certificate does not name 127.0.0.1', { REDIS_TLS: 'true', REDIS_TLS_CA_FILE: pki.ca, REDIS_SENTINEL_TLS: 'true' }],
      ['the sentinel name forced onto the nodes too', { ...tlsEnv, REDIS_TLS_SERVERNAME: SENTINEL_NAME, RATE_LIMIT_MAX: '0' }]
    ]
    const bads = await Promise.all(refused.map(async ([, env]) => await startInProcess(t, topo, { REDIS_CONNECT_TIMEOUT_MS: '1000', REQUEST_RETRY_BUDGET_MS: '500', ...env })))
    // The good gateway became ready within a second or two; give these a few seconds.
    await new Promise(resolve => setTimeout(resolve, 4000))
    for (const [i, [what]] of refused.entries()) {
      const gwBad = bads[i]!
      const res = await fetch(`${gwBad.url}/readyz`)
      const body = await res.json() as { reason?: string }
      t.equal(res.status, 503, `${what}: /readyz 503 (${body.reason ?? ''})`)
      const put = await fetch(`${gwBad.url}/kv/${encodeURIComponent(key)}?durability=none`, { method: 'PUT', body: 'x', headers: { 'content-type': 'application/octet-stream' } })
      t.ok(put.status >= 500, `${what}: a write fails (${put.status})`)
      await put.arrayBuffer()
    }
    const sentinelView = await (await fetch(`${bads[0]!.url}/topology`)).json() as { sentinels: Array<{ reachable: boolean }> }
    t.ok(sentinelView.sentinels.every(s => !s.reachable), 'without a CA no sentinel is reachable')
    const nodeView = await (await fetch(`${bads[1]!.url}/topology`)).json() as { master: { confirmed: boolean } | null; sentinels: Array<{ reachable: boolean }> }
    t.ok(nodeView.sentinels.some(s => s.reachable), 'with the sentinel CA the sentinels answer')
    t.not(nodeView.master?.confirmed, true, 'but the master cannot be verified without the nodes\' CA')
  })
}
