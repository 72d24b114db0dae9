/**
 * `npm run demo`: a local Sentinel topology (1 master, 2 replicas, 3 sentinels on loopback, free
 * ports, temp dirs) and the gateway in front of it, until Ctrl-C. Everything started is stopped.
 */
import { spawn } from 'node:child_process'
import { startTopology } from '../test/helpers/topology.js'
import { gatewayEnv, serverPath } from '../test/helpers/gateway.js'

const port = process.env.PORT ?? '3000'
const say = (line: string): void => { process.stdout.write(`${line}\n`) }

const topo = await startTopology({ log: l => say(`[topology] ${l}`) })
const gateway = spawn(process.execPath, [serverPath()], {
  env: {
    ...process.env,
    // The sentinels, and the Redis ACL users every node of the topology has (data and control).
    ...Object.fromEntries(Object.entries(gatewayEnv(topo)).filter(([k]) => k.startsWith('REDIS_') && k !== 'REDIS_REFRESH_INTERVAL_MS')),
    PORT: port,
    HOST: process.env.HOST ?? '127.0.0.1',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn'
  },
  stdio: ['ignore', 'inherit', 'inherit']
})

let stopping = false
async function stop (code: number): Promise<void> {
  if (stopping) return
  stopping = true
  if (gateway.exitCode === null) {
    gateway.kill('SIGTERM')
    await new Promise(resolve => gateway.once('exit', resolve))
  }
  await topo.stop()
  process.exit(code)
}
process.on('SIGINT', () => { void stop(0) })
process.on('SIGTERM', () => { void stop(0) })
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
  sentinels: REDIS_SENTINELS=${topo.sentinelList}  REDIS_MASTER_NAME=${topo.masterName}

Try:
  curl -X PUT --data-binary 'Alice' ${url}/kv/user:1          # stored on the master
  curl -i ${url}/kv/user:1                                    # served by a replica (X-Served-By)
  curl -i '${url}/kv/user:1?consistency=strong'               # served by the master
  curl -X DELETE ${url}/kv/user:1
  curl ${url}/topology

Ctrl-C stops the gateway and the topology.`)
