/**
 * `npm run demo` stops everything it started when npm itself gets SIGTERM (an IDE's stop button,
 * `timeout`) or SIGINT: npm runs the script through a shell, which would die and leave the demo and
 * its 3 redis-servers, 3 sentinels and gateway running; the script `exec`s node instead. Runs the
 * real npm script (its `predemo` build skipped with --ignore-scripts: dist/ is already built), in
 * Sentinel mode and with `-- --cluster` (a Redis Cluster of 3 masters + 3 replicas).
 */
import { spawn } from 'node:child_process'
import t from 'tap'
import { freePorts } from './helpers/topology-procs.js'

const READY_MS = 60_000
const STOP_MS = 20_000

/** Project root, whether this file runs from test/ (tap) or dist/test/. */
const root = (() => {
  const here = new URL('../', import.meta.url)
  return here.href.endsWith('/dist/') ? new URL('../', here) : here
})()

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function until (ms: number, check: () => boolean): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) return false
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return true
}

/** The `pids:` line the demo prints once ready: name -> pids. */
function parsePids (out: string): Map<string, number[]> | undefined {
  const line = /^\s*pids: (.*)$/m.exec(out)?.[1]
  if (line === undefined) return undefined
  return new Map(line.split(', ').map(part => {
    const [name = '', ...pids] = part.trim().split(' ')
    return [name, pids.map(Number)]
  }))
}

const RUNS = [
  { signal: 'SIGTERM', cluster: false },
  { signal: 'SIGINT', cluster: false },
  { signal: 'SIGTERM', cluster: true }
] as const

for (const { signal, cluster } of RUNS) {
  t.test(`${signal} to npm stops the demo${cluster ? ' -- --cluster' : ''}, its gateway, redis-servers${cluster ? '' : ' and sentinels'}`, async t => {
    const [port] = await freePorts(1)
    // Its own process group, so a failed test can still clean up everything it started.
    const npm = spawn('npm', ['run', 'demo', '--ignore-scripts', ...(cluster ? ['--', '--cluster'] : [])], {
      cwd: root, env: { ...process.env, PORT: String(port), LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true
    })
    t.teardown(() => { try { process.kill(-(npm.pid ?? 0), 'SIGKILL') } catch { /* all gone */ } })
    let out = ''
    npm.stdout.on('data', (d: Buffer) => { out += d.toString() })
    npm.stderr.on('data', (d: Buffer) => { out += d.toString() })
    const npmExit = new Promise<number | null>(resolve => npm.on('exit', code => resolve(code)))

    const ready = await until(READY_MS, () => parsePids(out) !== undefined || npm.exitCode !== null)
    const pids = parsePids(out)
    if (!ready || pids === undefined) {
      t.fail(`the demo did not print its pids within ${READY_MS} ms: ${out.slice(-3000)}`)
      return
    }
    if (cluster) {
      t.same([...pids.keys()], ['demo', 'gateway', 'redis-server'])
      t.equal(pids.get('redis-server')?.length, 6, '6 redis-servers (3 masters + 3 replicas)')
      t.match(out, /REDIS_CLUSTER_NODES=/, 'it says it runs a cluster')
    } else {
      t.same([...pids.keys()], ['demo', 'gateway', 'redis-server', 'redis-sentinel'])
      t.equal(pids.get('redis-server')?.length, 3, '3 redis-servers')
      t.equal(pids.get('redis-sentinel')?.length, 3, '3 sentinels')
    }
    const all = [...pids.values()].flat()
    t.ok(all.every(p => Number.isInteger(p) && p > 0 && alive(p)), `every printed pid is running (${all.join(' ')})`)
    t.not(pids.get('demo')?.[0], npm.pid, 'the demo is a child of npm, not npm itself')
    const health = await fetch(`http://127.0.0.1:${port}/readyz`).then(r => r.status, () => 0)
    t.equal(health, 200, `the gateway answers on PORT=${port}`)

    const started = Date.now()
    process.kill(npm.pid ?? 0, signal)
    let timer: NodeJS.Timeout | undefined
    const code = await Promise.race([npmExit, new Promise<'timeout'>(resolve => { timer = setTimeout(() => resolve('timeout'), STOP_MS) })])
    clearTimeout(timer)
    t.not(code, 'timeout', `npm exits within ${STOP_MS} ms`)
    const gone = await until(STOP_MS, () => all.every(p => !alive(p)))
    t.ok(gone, `every process the demo started is gone ${Date.now() - started} ms after ${signal}; left: ${all.filter(alive).join(' ') || 'none'}`)
    const after = await fetch(`http://127.0.0.1:${port}/healthz`).then(r => r.status, () => 0)
    t.equal(after, 0, 'nothing listens on PORT any more')
  })
}
