/**
 * compose.yaml's cluster profile, its entrypoints run for real on loopback (no Docker here, as in
 * test/compose-scripts.test.ts): 6 nodes from compose/redis-node.sh with SKV_CLUSTER=yes, then
 * compose/redis-cluster-init.sh creates the cluster once (a second run changes nothing), a gateway with
 * compose.yaml's gateway-cluster environment logs in with the compose users, and a restarted node keeps its cluster state and config.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse } from 'yaml'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { controlUserRules, dataUserRules } from '../src/security/acl.js'
import { freePorts, HOST, probe, waitUntil } from './helpers/topology-procs.js'

const root = fileURLToPath(new URL(new URL('../', import.meta.url).href.endsWith('/dist/') ? '../../' : '../', import.meta.url))
const tmp = mkdtempSync(path.join(os.tmpdir(), 'skv-compose-cluster-'))
t.teardown(() => { rmSync(tmp, { recursive: true, force: true }) })
const secretsDir = path.join(tmp, 'secrets')
mkdirSync(secretsDir)
const password = randomBytes(16).toString('hex')
for (const name of ['redis_password', 'redis_data_password', 'redis_control_password']) {
  writeFileSync(path.join(secretsDir, name), `${name === 'redis_password' ? password : randomBytes(16).toString('hex')}\n`, { mode: 0o600 })
}
const token = randomBytes(16).toString('hex')
const auth = { authorization: `Bearer ${token}` }
writeFileSync(path.join(secretsDir, 'auth_tokens'), JSON.stringify([{ name: 'admin', token, rights: ['read', 'write'] }]), { mode: 0o600 })
// The image's entrypoint drops root; here it only runs the command.
const shim = path.join(tmp, 'bin')
mkdirSync(shim)
writeFileSync(path.join(shim, 'docker-entrypoint.sh'), '#!/bin/sh\nexec "$@"\n')
chmodSync(path.join(shim, 'docker-entrypoint.sh'), 0o755)

const ports = await freePorts(6)
const running = new Set<ChildProcess>()
t.teardown(() => { for (const c of running) c.kill('SIGKILL') })
const dirOf = (port: number): string => path.join(tmp, `node-${port}`)
const baseEnv = { PATH: `${shim}:${process.env.PATH ?? ''}`, SKV_SECRETS: secretsDir }

/** Runs compose/<script> as compose would; resolves its exit code when `wait`. */
function run (script: string, dir: string, env: Record<string, string>): ChildProcess {
  mkdirSync(dir, { recursive: true })
  const out = openSync(path.join(dir, `${script}.log`), 'a')
  const child = spawn('sh', [path.join(root, 'compose', script)], { env: { ...baseEnv, SKV_DIR: dir, ...env }, stdio: ['ignore', out, out] })
  closeSync(out)
  running.add(child)
  child.once('exit', () => running.delete(child))
  return child
}
const exited = async (c: ChildProcess): Promise<number | null> => await new Promise(resolve => {
  if (c.exitCode !== null) resolve(c.exitCode)
  else c.once('exit', code => { resolve(code) })
})
const node = (port: number): ChildProcess => run('redis-node.sh', dirOf(port), {
  SKV_PORT: String(port), SKV_CLUSTER: 'yes', SKV_DATA_RULES: dataUserRules().join(' '), SKV_CONTROL_RULES: controlUserRules().join(' ')
})
const initDir = path.join(tmp, 'init')
/** One run of the init service; its exit code and output. */
async function init (): Promise<{ code: number | null; out: string }> {
  rmSync(path.join(initDir, 'redis-cluster-init.sh.log'), { force: true })
  const code = await exited(run('redis-cluster-init.sh', initDir, { SKV_CLUSTER_NODES: ports.map(p => `${HOST}:${p}`).join(',') }))
  return { code, out: readFileSync(path.join(initDir, 'redis-cluster-init.sh.log'), 'utf8') }
}
const call = async (port: number, ...args: string[]): Promise<string> => String(await probe(port, password, async c => await c.call(args[0]!, ...args.slice(1))))
/** "port:role" of every node, sorted, as the first node sees them. */
const roles = async (): Promise<string> => (await call(ports[0]!, 'CLUSTER', 'NODES')).trim().split('\n')
  .map(l => l.split(' ')).map(f => `${f[0]}:${f[1]!.split('@')[0]!.split(':')[1]}:${f[2]!.includes('master') ? 'master' : 'replica'}`).sort().join(' ')
const healthy = async (): Promise<void> => {
  await waitUntil('cluster_state:ok on every node', 30_000, async () => {
    for (const p of ports) if (!(await call(p, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return `:${p} not ok`
    return true
  })
}

const procs = new Map(ports.map(p => [p, node(p)]))
await waitUntil('the 6 nodes to answer', 10_000, async () => { for (const p of ports) await call(p, 'PING'); return true })

t.test('first start: the init service creates 3 masters with a replica each; a gateway in Cluster mode logs in', async t => {
  for (const p of ports) {
    const conf = readFileSync(path.join(dirOf(p), 'redis.conf'), 'utf8')
    t.match(conf, /^cluster-enabled yes$/m, `:${p}: a cluster node`)
    t.notMatch(conf, /^replicaof /m, `:${p}: no replicaof (the init service assigns roles)`)
    t.notMatch(conf, /^replica-announce-ip /m, `:${p}: no announced host name (the gateway matches replicas by their IP in CLUSTER NODES)`)
  }
  const first = await init()
  t.equal(first.code, 0, `redis-cli --cluster create succeeded (${first.out.slice(-300)})`)
  t.notMatch(first.out, new RegExp(password), 'the password is not in its output')
  await healthy()
  // The replicas' CLUSTER REPLICATE reaches the other nodes by gossip: bounded wait for it.
  const count = (r: string, role: string): number => r.split(' ').filter(x => x.endsWith(`:${role}`)).length
  await waitUntil('3 replicas in the first node\'s view', 15_000, async () => count(await roles(), 'replica') === 3 || await roles())
  const r = await roles()
  t.equal(count(r, 'master'), 3, `3 masters (${r})`)
  t.equal(count(r, 'replica'), 3, '3 replicas')
  // compose.yaml's own gateway-cluster environment, its secrets at their local paths, the local nodes as seeds.
  const compose = parse(readFileSync(path.join(root, 'compose.yaml'), 'utf8'), { merge: true }) as { services: Record<string, { environment: Record<string, string> }> }
  const gwEnv = Object.fromEntries(Object.entries(compose.services['gateway-cluster']!.environment)
    .map(([k, v]) => [k, String(v).replace(/^\/run\/secrets\//, `${secretsDir}/`)]))
  const app = await buildApp(loadConfig({
    ...gwEnv, REDIS_CLUSTER_NODES: ports.map(p => `${HOST}:${p}`).join(','), LOG_LEVEL: 'silent', EVENT_LOOP_MAX_DELAY_MS: '0'
  }))
  t.teardown(async () => { await app.close() })
  await waitUntil('the gateway to be ready', 15_000, async () => (await app.inject('/readyz')).statusCode === 200 || 'not ready')
  for (const key of ['compose:a', 'compose:b', 'compose:c']) {
    const put = await app.inject({ method: 'PUT', url: `/kv/${encodeURIComponent(key)}`, payload: key, headers: auth })
    t.equal(put.statusCode, 201, `PUT ${key} through the compose users (${put.body})`)
    t.equal((JSON.parse(put.body) as { replicas?: number }).replicas, 1, 'confirmed by the shard\'s one replica (counted once)')
    t.equal((await app.inject({ url: `/kv/${encodeURIComponent(key)}`, headers: auth })).body, key, `GET ${key}`)
  }
})

t.test('later starts: the init service changes nothing, a restarted node keeps its cluster state and its config', async t => {
  const before = await roles()
  const again = await init()
  t.equal(again.code, 0, 'a second run succeeds')
  t.match(again.out, /already exists/, `and does nothing (${again.out.trim()})`)
  t.equal(await roles(), before, 'same node ids and roles')
  const p = ports[5]!
  const conf = path.join(dirOf(p), 'redis.conf')
  const mtime = statSync(conf).mtimeMs
  const c = procs.get(p)!
  c.kill('SIGTERM')
  await exited(c)
  procs.set(p, node(p))
  await healthy()
  t.equal(statSync(conf).mtimeMs, mtime, 'its config file was not written again')
  t.equal(await roles(), before, 'the restarted node rejoined with its id and role (nodes.conf on its volume)')
})
