/**
 * compose/redis-node.sh and compose/redis-sentinel.sh, the entrypoints of compose.yaml's nodes and
 * sentinels, run for real on loopback (no Docker here: `docker-entrypoint.sh` is a shim that execs its
 * arguments, /data and /run/secrets are temp dirs). The config files come from the secret files only,
 * a gateway logs in with them, and after a failover a restarted sentinel and a restarted promoted
 * node keep the failover's outcome (their files are not generated again).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { controlUserRules, dataUserRules } from '../src/security/acl.js'
import { freePorts, HOST, kv, parseRole, probe, waitUntil } from './helpers/topology-procs.js'

const root = fileURLToPath(new URL(new URL('../', import.meta.url).href.endsWith('/dist/') ? '../../' : '../', import.meta.url))
const tmp = mkdtempSync(path.join(os.tmpdir(), 'skv-compose-'))
t.teardown(() => { rmSync(tmp, { recursive: true, force: true }) })

const secretsDir = path.join(tmp, 'secrets')
mkdirSync(secretsDir)
const pw = (): string => randomBytes(16).toString('hex')
const secrets = { redis_password: pw(), redis_data_password: pw(), redis_control_password: pw(), sentinel_password: pw() }
for (const [name, value] of Object.entries(secrets)) writeFileSync(path.join(secretsDir, name), `${value}\n`, { mode: 0o600 })
// The image's entrypoint drops root; here it only runs the command.
const shim = path.join(tmp, 'bin')
mkdirSync(shim)
writeFileSync(path.join(shim, 'docker-entrypoint.sh'), '#!/bin/sh\nprintf \'%s\\n\' "$*" > "$SKV_DIR/entrypoint-args"\nexec "$@"\n')
chmodSync(path.join(shim, 'docker-entrypoint.sh'), 0o755)

const [masterPort, replicaPort, sentinelPort] = await freePorts(3) as [number, number, number]
const running = new Set<ChildProcess>()
t.teardown(() => { for (const c of running) c.kill('SIGKILL') })

interface Service { name: string; script: string; dir: string; env: Record<string, string> }
const node = (name: string, port: number, replicaOf?: number): Service => ({
  name,
  script: 'redis-node.sh',
  dir: path.join(tmp, name),
  env: {
    SKV_PORT: String(port), SKV_ANNOUNCE: HOST, SKV_DATA_RULES: dataUserRules().join(' '), SKV_CONTROL_RULES: controlUserRules().join(' '),
    ...(replicaOf === undefined ? {} : { SKV_REPLICA_OF: `${HOST} ${replicaOf}` })
  }
})
const master = node('redis-master', masterPort)
const replica = node('redis-replica-1', replicaPort, masterPort)
const sentinel: Service = {
  name: 'sentinel-1',
  script: 'redis-sentinel.sh',
  dir: path.join(tmp, 'sentinel-1'),
  env: { SKV_PORT: String(sentinelPort), SKV_ANNOUNCE: HOST, SKV_MASTER_NAME: 'mymaster', SKV_MASTER: `${HOST} ${masterPort}`, SKV_QUORUM: '1' }
}

/** Runs the service's script as compose would (the same environment every time). */
function run (s: Service): ChildProcess {
  mkdirSync(s.dir, { recursive: true })
  const out = openSync(path.join(s.dir, 'out.log'), 'a')
  const child = spawn('sh', [path.join(root, 'compose', s.script)], {
    env: { PATH: `${shim}:${process.env.PATH ?? ''}`, SKV_DIR: s.dir, SKV_SECRETS: secretsDir, ...s.env },
    stdio: ['ignore', out, out]
  })
  closeSync(out)
  running.add(child)
  child.once('exit', () => running.delete(child))
  return child
}

async function stop (c: ChildProcess): Promise<void> {
  const exited = new Promise(resolve => c.once('exit', resolve))
  c.kill('SIGTERM')
  await exited
}

const roleOf = async (port: number): Promise<ReturnType<typeof parseRole>> => parseRole(await probe(port, secrets.redis_password, async c => await c.call('ROLE')))
const sentinelMaster = async (): Promise<string> => {
  const addr = await probe(sentinelPort, secrets.sentinel_password, async c => await c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster')) as string[]
  return addr.join(':')
}

// The sentinel starts once the replica is in sync, so its first INFO of the master lists it.
const procs = { master: run(master), replica: run(replica), sentinel: undefined as unknown as ChildProcess }

t.test('first start: configs from the secret files, no password on a command line, a gateway logs in', async t => {
  await waitUntil('the replica to sync', 20_000, async () => {
    const r = await roleOf(replicaPort)
    return r.role === 'slave' && r.state === 'connected' ? true : JSON.stringify(r)
  })
  procs.sentinel = run(sentinel)
  await waitUntil('the sentinel to see the replica', 20_000, async () => {
    const m = kv(await probe(sentinelPort, secrets.sentinel_password, async c => await c.call('SENTINEL', 'MASTER', 'mymaster')))
    return m['num-slaves'] === '1' ? true : `num-slaves ${m['num-slaves']}`
  })
  t.equal(await sentinelMaster(), `${HOST}:${masterPort}`)
  for (const s of [master, replica, sentinel]) {
    const conf = path.join(s.dir, s === sentinel ? 'sentinel.conf' : 'redis.conf')
    t.equal(statSync(conf).mode & 0o777, 0o600, `${s.name}: its config file is readable by its owner only`)
  }
  for (const s of [master, replica, sentinel]) {
    const args = readFileSync(path.join(s.dir, 'entrypoint-args'), 'utf8').trim()
    t.equal(args, `redis-server ${path.join(s.dir, s === sentinel ? 'sentinel.conf' : 'redis.conf')}${s === sentinel ? ' --sentinel' : ''}`, `${s.name}: the command line is the config file only`)
  }
  const noAuth = await probe(sentinelPort, undefined, async c => await c.call('PING')).then(() => 'PONG', (e: Error) => e.message)
  t.match(noAuth, /NOAUTH/, 'the sentinel requires its password')

  const app = await buildApp(loadConfig({
    REDIS_SENTINELS: `${HOST}:${sentinelPort}`,
    REDIS_SENTINEL_PASSWORD_FILE: path.join(secretsDir, 'sentinel_password'),
    REDIS_USERNAME: 'skv-data',
    REDIS_PASSWORD_FILE: path.join(secretsDir, 'redis_data_password'),
    REDIS_CONTROL_USERNAME: 'skv-control',
    REDIS_CONTROL_PASSWORD_FILE: path.join(secretsDir, 'redis_control_password'),
    LOG_LEVEL: 'silent',
    EVENT_LOOP_MAX_DELAY_MS: '0'
  }))
  t.teardown(async () => { await app.close() })
  await waitUntil('the gateway to be ready', 10_000, async () => (await app.inject('/readyz')).statusCode === 200 || 'not ready')
  const put = await app.inject({ method: 'PUT', url: '/kv/compose%3A1', payload: 'v' })
  t.equal(put.statusCode, 201, `PUT through the compose users (${put.body})`)
  t.equal(await probe(masterPort, secrets.redis_password, async c => await c.get('compose:1')), 'v', 'stored on the master')
})

t.test('after a failover, a restarted sentinel and a restarted promoted node keep its outcome', async t => {
  await probe(sentinelPort, secrets.sentinel_password, async c => await c.call('SENTINEL', 'FAILOVER', 'mymaster'))
  await waitUntil('the sentinel to report the replica as master', 20_000, async () => {
    const m = await sentinelMaster()
    return m === `${HOST}:${replicaPort}` && (await roleOf(replicaPort)).role === 'master' ? true : m
  })
  await stop(procs.sentinel)
  await stop(procs.replica)
  procs.sentinel = run(sentinel)
  procs.replica = run(replica) // same environment: SKV_REPLICA_OF still names the first master
  await waitUntil('the restarted processes to answer', 10_000, async () => {
    await roleOf(replicaPort)
    await sentinelMaster()
    return true
  })
  t.equal(await sentinelMaster(), `${HOST}:${replicaPort}`, 'the restarted sentinel still names the promoted node')
  t.equal((await roleOf(replicaPort)).role, 'master', 'the restarted promoted node is still master (its config was not generated again)')
  t.notMatch(readFileSync(path.join(replica.dir, 'redis.conf'), 'utf8'), /^replicaof /m, 'its config file says no replicaof')
})
