/**
 * Starting the gateway for tests: in-process (buildApp, fast, inspectable) or as a real process
 * (`node dist/src/server.js`, never through npm, so SIGTERM reaches it).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { recordAnswers } from './answer-recorder.js'
import { pollUntil } from './kv-client.js'
import { freePorts } from './topology-procs.js'
import type { AclCredentials, Topology } from './topology.js'

export interface Teardown { teardown(fn: () => unknown): void }

/** What every test gateway runs with, whatever it fronts (tests may override any variable). */
export const TEST_GATEWAY_ENV: Readonly<Record<string, string>> = {
  HOST: '127.0.0.1',
  PORT: '0',
  LOG_LEVEL: 'silent',
  REDIS_REFRESH_INTERVAL_MS: '250',
  // In-process gateways share the test's event loop: no load shedding unless a test asks for it.
  EVENT_LOOP_MAX_DELAY_MS: '0'
}

/** The gateway logs in as the data and control users of test/helpers/topology.ts (and cluster.ts). */
export function aclEnv (acl: { data: AclCredentials; control: AclCredentials }): Record<string, string> {
  return {
    REDIS_USERNAME: acl.data.username,
    REDIS_PASSWORD: acl.data.password,
    REDIS_CONTROL_USERNAME: acl.control.username,
    REDIS_CONTROL_PASSWORD: acl.control.password
  }
}

/** Environment for a gateway in front of `topo` (tests may override any variable). */
export function gatewayEnv (topo: Topology, extra: Record<string, string> = {}): Record<string, string> {
  return {
    REDIS_SENTINELS: topo.sentinelList,
    REDIS_MASTER_NAME: topo.masterName,
    ...(topo.password === undefined ? {} : { REDIS_PASSWORD: topo.password }),
    // The whole suite runs with Redis ACL's second wall (test/helpers/topology.ts creates the users).
    ...(topo.acl === undefined ? {} : aclEnv(topo.acl)),
    ...(topo.sentinelPassword === undefined ? {} : { REDIS_SENTINEL_PASSWORD: topo.sentinelPassword }),
    ...TEST_GATEWAY_ENV,
    ...extra
  }
}

export interface InProcessGateway { app: FastifyInstance; url: string }

/** Builds and listens in this process; closed on teardown. */
export async function startInProcess (t: Teardown, topo: Topology, extra: Record<string, string> = {}): Promise<InProcessGateway> {
  return await startInProcessWith(t, gatewayEnv(topo, extra))
}

/** Builds a gateway configured by `env` and listens in this process; closed on teardown. */
export async function startInProcessWith (t: Teardown, env: Record<string, string>): Promise<InProcessGateway> {
  const app = await buildApp(loadConfig(env))
  recordAnswers(app)
  t.teardown(async () => await app.close())
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, url }
}

/**
 * Waits (up to `ms`) until the in-process gateway has confirmed the master by its own role and
 * sees `replicas` healthy replicas: before that a read may fall back to the master and a write wait.
 */
export async function untilSettled (app: FastifyInstance, replicas = 2, ms = 20_000): Promise<void> {
  const { value } = await pollUntil(ms, 100, async () => {
    const s = app.topology.snapshot
    return s.masterConfirmed && s.replicas.filter(r => r.healthy).length === replicas ? true : undefined
  })
  if (value !== true) throw new Error(`the gateway did not confirm the master and see ${replicas} healthy replicas within ${ms} ms`)
}

export interface GatewayProcess { url: string; child: ChildProcess; output: () => string; stop(): Promise<number | null> }


/** Path of the compiled server, whether this file runs from test/ (tap) or dist/test/. */
export function serverPath (): string {
  const here = new URL('../../', import.meta.url)
  const root = here.href.endsWith('/dist/') ? new URL('../', here) : here
  return fileURLToPath(new URL('dist/src/server.js', root))
}

/** Runs `node dist/src/server.js` with `env`; resolves when it exits (code) or after `ms`. */
export async function runServer (env: Record<string, string>, ms = 10_000): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const child = spawn(process.execPath, [serverPath()], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const code = await new Promise<number | null>(resolve => {
    const timer = setTimeout(() => { child.kill('SIGKILL') }, ms)
    child.on('exit', c => { clearTimeout(timer); resolve(c) })
  })
  return { code, stderr, stdout }
}

/** Starts the compiled server as a child process on a free port and waits for /readyz. */
export async function startProcess (t: Teardown, topo: Topology, extra: Record<string, string> = {}, readyTimeoutMs = 15_000): Promise<GatewayProcess> {
  const [port] = await freePorts(1)
  const env = gatewayEnv(topo, { LOG_LEVEL: 'info', ...extra, PORT: String(port) })
  const child = spawn(process.execPath, [serverPath()], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { out += d.toString() })
  const exited = new Promise<number | null>(resolve => child.on('exit', c => resolve(c)))
  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    const code = await exited
    clearTimeout(timer)
    return code
  }
  t.teardown(stop)
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + readyTimeoutMs
  for (;;) {
    try {
      const r = await fetch(`${url}/readyz`)
      if (r.status === 200) break
    } catch { /* not listening yet */ }
    if (child.exitCode !== null) throw new Error(`gateway exited with ${child.exitCode}: ${out.slice(-2000)}`)
    if (Date.now() > deadline) throw new Error(`gateway not ready within ${readyTimeoutMs} ms: ${out.length > 6000 ? `${out.slice(0, 3000)} [...] ${out.slice(-3000)}` : out}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  return { url, child, output: () => out, stop }
}
