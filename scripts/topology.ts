// Local Redis Sentinel topology for the demo and manual testing.
//   node dist/scripts/topology.js up     starts 1 master + 2 replicas + 3 sentinels on 127.0.0.1, prints
//                                        REDIS_SENTINELS=... / REDIS_MASTER_NAME=... and stays in the
//                                        foreground until SIGINT/SIGTERM, then stops everything (exit 0).
//   node dist/scripts/topology.js down   stops a topology started by `up` (via the state file).
// Options (env, all optional): TOPOLOGY_MASTER_NAME, TOPOLOGY_REPLICAS, TOPOLOGY_SENTINELS, TOPOLOGY_QUORUM,
// TOPOLOGY_DOWN_AFTER_MS, TOPOLOGY_FAILOVER_TIMEOUT_MS, TOPOLOGY_PASSWORD, TOPOLOGY_SENTINEL_PASSWORD,
// TOPOLOGY_STATE_FILE (default <tmpdir>/skv-topology.json).
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { startTopology, type TopologyOptions } from '../test/helpers/topology.js'

const stateFile = process.env.TOPOLOGY_STATE_FILE ?? path.join(os.tmpdir(), 'skv-topology.json')

interface State { pid: number; dir: string; sentinelList: string; masterName: string; nodes: { role: string; port: number; pid: number }[] }

function envInt(name: string): number | undefined {
  const v = process.env[name]
  if (v === undefined || v === '') return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got '${v}'`)
  return n
}

function optionsFromEnv(): TopologyOptions {
  const o: TopologyOptions = { log: (line) => process.stderr.write(`[topology] ${line}\n`) }
  const e = process.env
  if (e.TOPOLOGY_MASTER_NAME) o.masterName = e.TOPOLOGY_MASTER_NAME
  if (e.TOPOLOGY_PASSWORD) o.password = e.TOPOLOGY_PASSWORD
  if (e.TOPOLOGY_SENTINEL_PASSWORD) o.sentinelPassword = e.TOPOLOGY_SENTINEL_PASSWORD
  const ints: [keyof TopologyOptions, string][] = [
    ['replicas', 'TOPOLOGY_REPLICAS'], ['sentinels', 'TOPOLOGY_SENTINELS'], ['quorum', 'TOPOLOGY_QUORUM'],
    ['downAfterMs', 'TOPOLOGY_DOWN_AFTER_MS'], ['failoverTimeoutMs', 'TOPOLOGY_FAILOVER_TIMEOUT_MS'],
  ]
  for (const [key, name] of ints) {
    const n = envInt(name)
    if (n !== undefined) Object.assign(o, { [key]: n })
  }
  return o
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Guards against pid reuse: only signal a pid whose command line still looks like ours. */
function cmdlineHas(pid: number, word: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(word)
  } catch {
    return process.platform !== 'linux' && pidAlive(pid) // no /proc (macOS): trust the pid
  }
}

function readState(): State | undefined {
  try {
    return JSON.parse(readFileSync(stateFile, 'utf8')) as State
  } catch {
    return undefined
  }
}

async function up(): Promise<void> {
  const prev = readState()
  if (prev && pidAlive(prev.pid) && cmdlineHas(prev.pid, 'topology')) {
    throw new Error(`a topology is already up (pid ${prev.pid}, REDIS_SENTINELS=${prev.sentinelList}); run 'down' first`)
  }
  const started = Date.now()
  const topo = await startTopology(optionsFromEnv())
  const keepAlive = setInterval(() => {}, 1 << 30)
  let stopping = false
  const shutdown = (sig: string): void => {
    if (stopping) return
    stopping = true
    process.stderr.write(`[topology] ${sig}: stopping\n`)
    topo.stop().then(
      () => {
        rmSync(stateFile, { force: true })
        clearInterval(keepAlive)
        process.exit(0)
      },
      (err: unknown) => {
        process.stderr.write(`[topology] stop failed: ${String(err)}\n`)
        process.exit(1)
      },
    )
  }
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => shutdown(sig))

  const state: State = {
    pid: process.pid,
    dir: path.dirname(topo.redis[0]?.dir ?? ''),
    sentinelList: topo.sentinelList,
    masterName: topo.masterName,
    nodes: [...topo.redis, ...topo.sentinels].map((p) => ({ role: p.role, port: p.port, pid: p.pid })),
  }
  writeFileSync(stateFile, JSON.stringify(state, null, 2))

  const out: string[] = [`REDIS_SENTINELS=${topo.sentinelList}`, `REDIS_MASTER_NAME=${topo.masterName}`]
  if (topo.acl !== undefined) {
    // Every node has the gateway's Redis ACL users (README, "Redis ACL: the second wall").
    out.push(`REDIS_USERNAME=${topo.acl.data.username}`, `REDIS_PASSWORD=${topo.acl.data.password}`,
      `REDIS_CONTROL_USERNAME=${topo.acl.control.username}`, `REDIS_CONTROL_PASSWORD=${topo.acl.control.password}`)
    if (topo.password !== undefined) out.push(`# default user (sentinels, replication): ${topo.password}`)
  } else if (topo.password !== undefined) out.push(`REDIS_PASSWORD=${topo.password}`)
  if (topo.sentinelPassword !== undefined) out.push(`REDIS_SENTINEL_PASSWORD=${topo.sentinelPassword}`)
  topo.redis.forEach((p, i) => out.push(`# redis    ${i === 0 ? 'master ' : 'replica'} 127.0.0.1:${p.port} pid ${p.pid} dir ${p.dir}`))
  topo.sentinels.forEach((p) => out.push(`# sentinel         127.0.0.1:${p.port} pid ${p.pid} dir ${p.dir}`))
  out.push(`# up in ${Date.now() - started} ms; state in ${stateFile}; Ctrl-C (or 'topology.js down') stops it`)
  process.stdout.write(out.join('\n') + '\n')
}

async function down(): Promise<void> {
  const st = readState()
  if (!st) {
    process.stdout.write(`no topology state at ${stateFile}: nothing to stop\n`)
    return
  }
  if (pidAlive(st.pid) && cmdlineHas(st.pid, 'topology')) {
    process.kill(st.pid, 'SIGTERM')
    const deadline = Date.now() + 10_000
    while (pidAlive(st.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  }
  // If the `up` process was gone (or stuck), kill the nodes it had started, by their recorded pids.
  for (const n of st.nodes) {
    if (pidAlive(n.pid) && cmdlineHas(n.pid, 'redis')) {
      try {
        process.kill(n.pid, 'SIGCONT')
        process.kill(n.pid, 'SIGKILL')
      } catch {
        // exited meanwhile
      }
    }
  }
  if (path.basename(st.dir).startsWith('skv-')) rmSync(st.dir, { recursive: true, force: true })
  rmSync(stateFile, { force: true })
  process.stdout.write(`stopped topology ${st.sentinelList}\n`)
}

const cmd = process.argv[2]
const run = cmd === 'up' ? up : cmd === 'down' ? down : undefined
if (!run) {
  process.stderr.write('usage: node dist/scripts/topology.js up|down\n')
  process.exit(2)
}
run().catch((err: unknown) => {
  process.stderr.write(`topology ${cmd}: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
