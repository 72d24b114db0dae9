/**
 * `npm run demo`: a local Sentinel topology (1 master, 2 replicas, 3 sentinels on loopback, free
 * ports, temp dirs) and the gateway in front of it, until Ctrl-C, SIGTERM or SIGHUP.
 * `npm run demo -- --cluster`: a local Redis Cluster (3 masters + 3 replicas) instead. Everything
 * started is stopped, also when the signal comes while it is still starting. The npm script runs
 * this file with `exec`, so npm's shell is replaced and a signal sent to npm reaches this process.
 * Once ready it prints every pid it started (test/demo.test.ts checks they are all gone after SIGTERM).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { startTopology } from '../test/helpers/topology.js'
import { aclEnv, gatewayEnv, serverPath } from '../test/helpers/gateway.js'
import { startCluster } from '../test/helpers/cluster.js'

const port = process.env.PORT ?? '3000'
/** The gateway gets SHUTDOWN_TIMEOUT_MS (default 10 s) for in-flight requests; then it is killed. */
const GATEWAY_STOP_MS = 12_000
const say = (line: string): void => { process.stdout.write(`${line}\n`) }

/** What the demo started in front of the gateway: Sentinel topology or Cluster. */
interface Deployment { env: Record<string, string>; pids: string; lines: string[]; stop(): Promise<void> }

const clusterMode = process.argv.includes('--cluster')
let topo: Deployment | undefined
let gateway: ChildProcess | undefined
let stopping = false

async function stop (code: number): Promise<void> {
  if (stopping) return
  stopping = true
  // Still starting: exiting runs the exit hook of test/helpers/topology-procs.ts, which kills every
  // node spawned so far and removes their temp dirs.
  if (topo === undefined) process.exit(code)
  const g = gateway
  if (g !== undefined && g.exitCode === null && g.signalCode === null) {
    const exited = new Promise(resolve => g.once('exit', resolve))
    g.kill('SIGTERM')
    const timer = setTimeout(() => g.kill('SIGKILL'), GATEWAY_STOP_MS)
    await exited
    clearTimeout(timer)
  }
  await topo.stop()
  process.exit(code)
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => { void stop(0) })

topo = clusterMode ? await clusterDeployment() : await sentinelDeployment()
gateway = spawn(process.execPath, [serverPath()], {
  env: {
    ...process.env,
    // The sentinels (or cluster nodes), and the Redis ACL users every node has (data and control).
    ...topo.env,
    PORT: port,
    HOST: process.env.HOST ?? '127.0.0.1',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn'
  },
  stdio: ['ignore', 'inherit', 'inherit']
})
gateway.on('exit', (code) => {
  if (!stopping) { say(`gateway exited with code ${code}`); void stop(1) }
})

const url = `http://localhost:${port}`
const deadline = Date.now() + 15_000
for (;;) {
  const ok = await fetch(`${url}/readyz`).then(r => r.ok, () => false)
  if (ok) break
  if (Date.now() > deadline) { say('gateway did not become ready within 15 s'); await stop(1) }
  await new Promise(resolve => setTimeout(resolve, 100))
}

say(`
Sentinel KV gateway ready at ${url}
  operations page: ${url}/ui   (live topology, failover timeline, traffic)
${topo.lines.map(l => `  ${l}`).join('\n')}
  pids: demo ${process.pid}, gateway ${gateway.pid ?? '?'}, ${topo.pids}

Try:
  curl -X PUT --data-binary 'Alice' '${url}/kv/user:1'        # stored on the master
  curl -i '${url}/kv/user:1'                                  # served by a replica (X-Served-By)
  curl -i '${url}/kv/user:1?consistency=strong'               # served by the master
  curl -X DELETE '${url}/kv/user:1'
  curl '${url}/topology'

Ctrl-C (or SIGTERM) stops the gateway and the topology.`)

/** Only the Redis variables of a test environment (the demo's gateway keeps its own defaults). */
function redisEnv (env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('REDIS_') && k !== 'REDIS_REFRESH_INTERVAL_MS'))
}

async function sentinelDeployment (): Promise<Deployment> {
  const t = await startTopology({ log: l => say(`[topology] ${l}`) })
  return {
    env: redisEnv(gatewayEnv(t)),
    lines: [`sentinels: REDIS_SENTINELS=${t.sentinelList}  REDIS_MASTER_NAME=${t.masterName}`],
    pids: `redis-server ${t.redis.map(n => n.pid).join(' ')}, redis-sentinel ${t.sentinels.map(n => n.pid).join(' ')}`,
    stop: async () => await t.stop()
  }
}

async function clusterDeployment (): Promise<Deployment> {
  const c = await startCluster({ log: l => say(`[cluster] ${l}`) })
  return {
    env: redisEnv({ REDIS_CLUSTER_NODES: c.seedList, ...aclEnv(c.acl) }),
    lines: [`Redis Cluster (3 masters + 3 replicas): REDIS_CLUSTER_NODES=${c.seedList}`],
    pids: `redis-server ${c.nodes.map(n => n.pid).join(' ')}`,
    stop: async () => await c.stop()
  }
}
