// WORKERS=N: a cluster primary forks N full gateways on one port, restarts a killed one, forwards
// SIGTERM to all of them (in-flight requests finish, exit 0), and none outlives it.
import { readFileSync, readdirSync } from 'node:fs'
import { request } from 'node:http'
import t from 'tap'
import { gatewayEnv, runServer, startProcess, type GatewayProcess } from './helpers/gateway.js'
import { SLOW_PUT_BYTES, slowPut } from './helpers/kv-client.js'
import { topologyFor } from './helpers/topology.js'

const topo = await topologyFor(t)

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

/** State letter of a process (R, S, Z...), or undefined when it is gone. */
function procState (pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]
  } catch { return undefined }
}
const running = (pid: number): boolean => { const s = procState(pid); return s !== undefined && s !== 'Z' }

/** Live child processes of `ppid` (from /proc/<pid>/stat: the kernel's view, not the gateway's). */
function childrenOf (ppid: number): number[] {
  const out: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      const [state, parent] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(parent) === ppid && state !== 'Z') out.push(Number(name))
    } catch { /* exited while listing */ }
  }
  return out.sort((a, b) => a - b)
}

/** Polls `fn` every `stepMs` until it returns a value other than undefined/false, at most `ms`. */
async function until<T> (what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 15_000, stepMs = 100): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(stepMs)
  }
}

interface Answer { status: number; body: string }
/** One request on a fresh connection (no keep-alive), so the cluster may hand it to any worker. */
async function call (url: string, method: string, path: string, body?: string | Buffer): Promise<Answer> {
  const { port } = new URL(url)
  return await new Promise<Answer>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent: false, timeout: 10_000, headers: { connection: 'close' } }, res => {
      let text = ''
      res.on('data', (d: Buffer) => { text += d.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
    })
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 10 s`)))
    req.on('error', reject)
    req.end(body)
  })
}

interface LogLine { msg?: string; pid?: number; worker?: number; role?: string; url?: string; method?: string; status?: number; pids?: number[]; workerPid?: number }
function logLines (gw: GatewayProcess): LogLine[] {
  const out: LogLine[] = []
  for (const line of gw.output().split('\n')) {
    if (!line.startsWith('{')) continue
    try { out.push(JSON.parse(line) as LogLine) } catch { /* a line cut by the read */ }
  }
  return out
}
/** Pids of the workers that logged 'listening' (each worker logs it once, with its own pid). */
const listeningPids = (gw: GatewayProcess): number[] =>
  logLines(gw).filter(l => l.msg === 'listening' && typeof l.pid === 'number').map(l => l.pid as number)

/** Starts WORKERS=2 and waits until both workers listen. */
async function startCluster (t: Parameters<typeof startProcess>[0]): Promise<{ gw: GatewayProcess; primary: number; workers: number[] }> {
  const gw = await startProcess(t, topo, { WORKERS: '2', LOG_LEVEL: 'info' })
  const primary = gw.child.pid as number
  await until('both workers listening', () => listeningPids(gw).length === 2)
  const workers = await until('two worker processes', () => { const c = childrenOf(primary); return c.length === 2 ? c : undefined })
  return { gw, primary, workers }
}

t.test('WORKERS=2: two worker processes share the port, both serve, a killed one is replaced, none outlives the primary', async t => {
  const { gw, primary, workers } = await startCluster(t)
  const out = (): { output: string } => ({ output: gw.output().slice(-3000) })

  // (a) exactly two children, and they are the processes that listen.
  t.same(workers, [...listeningPids(gw)].sort((a, b) => a - b), 'the two children of the primary are the two listening workers', out())
  const started = logLines(gw).find(l => l.role === 'primary' && l.msg === 'started 2 workers')
  t.same([...(started?.pids ?? [])].sort((a, b) => a - b), workers, 'the primary logs that it started 2 workers, with their pids')
  t.equal((await call(gw.url, 'PUT', '/kv/wk%3Aa', 'hello')).status, 201, 'PUT through the shared port')
  t.same(await call(gw.url, 'GET', '/kv/wk%3Aa?consistency=strong'), { status: 200, body: 'hello' }, 'GET through the shared port')

  // (b) each request is logged by the process that served it, with that process's own pid:
  // 10 PUTs and 10 GETs with distinct URLs, each on its own connection.
  const urls: string[] = []
  for (let i = 0; i < 10; i++) {
    urls.push(`/kv/wk%3Ab${i}`)
    t.equal((await call(gw.url, 'PUT', `/kv/wk%3Ab${i}`, `v${i}`)).status, 201)
  }
  for (let i = 0; i < 10; i++) t.same(await call(gw.url, 'GET', `/kv/wk%3Ab${i}?consistency=strong`), { status: 200, body: `v${i}` })
  const servedBy = await until('a log line for each of the 20 requests', () => {
    const lines = logLines(gw).filter(l => l.msg === 'request' && l.url?.startsWith('/kv/wk%3Ab') === true)
    return lines.length === 20 ? lines : undefined
  }, 5_000)
  const pids = new Set(servedBy.map(l => l.pid))
  t.same([...pids].sort((a, b) => (a ?? 0) - (b ?? 0)), workers, 'both workers answered requests (and only they)', out())
  t.ok(servedBy.every(l => typeof l.worker === 'number'), 'each request line names its worker')

  // (d) SIGKILL one worker: it is replaced, and the service keeps answering meanwhile. Wait until the
  // primary has seen the death first: a connection node:cluster hands to a worker in the instant it
  // dies is lost with it (Node's round-robin handoff gets no answer), nothing the gateway can catch.
  const [victim, survivor] = workers as [number, number]
  process.kill(victim, 'SIGKILL')
  await until('the primary to log the death', () =>
    logLines(gw).some(l => l.role === 'primary' && l.msg === 'worker died unexpectedly: restarting it' && l.workerPid === victim), 5_000, 10)
  let answered = 0
  const replacement = await until('a replacement worker', async () => {
    const r = await call(gw.url, 'GET', '/kv/wk%3Aa?consistency=strong')
    t.equal(r.status, 200, 'answered while a worker is being replaced')
    answered++
    const c = childrenOf(primary)
    const fresh = c.filter(p => p !== survivor && p !== victim)
    return c.length === 2 && !c.includes(victim) && fresh.length === 1 && listeningPids(gw).includes(fresh[0] as number) ? fresh[0] : undefined
  }, 15_000, 50)
  t.ok(answered > 0)
  t.notOk(running(victim), 'the killed worker is gone')
  t.ok(logLines(gw).some(l => l.role === 'primary' && l.msg === 'worker restarted'), 'the primary logged the restart', out())
  const newPids = new Set<number>()
  for (let i = 0; i < 20 && newPids.size < 2; i++) {
    t.equal((await call(gw.url, 'GET', `/kv/wk%3Ad${i}`)).status, 404, 'a missing key, answered')
    await until('the request line', () => logLines(gw).find(l => l.msg === 'request' && l.url === `/kv/wk%3Ad${i}`), 5_000, 20)
      .then(l => { if (typeof l.pid === 'number') newPids.add(l.pid) })
  }
  t.same([...newPids].sort((a, b) => a - b), [survivor, replacement].sort((a, b) => a - b), 'the survivor and the replacement both serve')

  // A primary killed outright takes its workers with it.
  process.kill(primary, 'SIGKILL')
  await until('every worker gone after the primary was killed', () => !running(survivor) && !running(replacement), 5_000, 50)
  t.pass('no worker outlived the primary')
})

t.test('WORKERS=2: SIGTERM to the primary finishes the in-flight request, stops every worker, exit 0', async t => {
  const { gw, primary, workers } = await startCluster(t)
  // A PUT whose body arrives slowly: it is in flight in one of the workers when SIGTERM comes.
  const answer = slowPut(gw.url, '/kv/wk%3Ainflight', () => process.kill(primary, 'SIGTERM'), 9)
  const r = await answer.catch((err: Error) => { t.comment(gw.output().slice(-3000)); throw err })
  t.equal(r.status, 201, `the in-flight PUT completed: ${r.body}`)
  const code = await gw.stop()
  t.equal(code, 0, 'the primary exits 0', { output: gw.output().slice(-3000) })
  for (const pid of workers) t.notOk(running(pid), `worker ${pid} exited`)
  const lines = logLines(gw)
  t.ok(lines.some(l => l.role === 'primary' && l.msg?.startsWith('shutting down') === true), 'the primary forwarded the shutdown')
  t.equal(lines.filter(l => l.msg === 'worker stopped').length, 2, 'both workers reported stopped')
  t.notOk(lines.some(l => l.msg === 'worker died unexpectedly: restarting it'), 'nothing restarted during the shutdown')
  const m = topo.client((await topo.master()).port)
  t.teardown(() => m.disconnect())
  t.equal((await m.getBuffer('wk:inflight'))?.length, SLOW_PUT_BYTES, 'the value was stored whole')
  await t.rejects(call(gw.url, 'GET', '/healthz'), 'the port is closed')
})

t.test('an invalid WORKERS exits 2 with one line, before forking anything', async t => {
  for (const bad of ['65', 'two']) {
    const r = await runServer(gatewayEnv(topo, { WORKERS: bad }))
    t.equal(r.code, 2, `WORKERS=${bad}: exit code 2`)
    t.equal(r.stderr, `sentinel-kv-gateway: Invalid environment variable WORKERS: must be auto or an integer between 1 and 64 (got "${bad}")\n`)
  }
  // The token list is checked by the primary too: one line, no worker started.
  const r = await runServer(gatewayEnv(topo, { WORKERS: '2', AUTH_TOKENS: 'short:rw', LOG_LEVEL: 'info' }))
  t.equal(r.code, 2, 'a bad AUTH_TOKENS with WORKERS=2: exit code 2')
  t.match(r.stderr, /^sentinel-kv-gateway: Invalid environment variable AUTH_TOKENS \(entry 1\)/)
  t.notMatch(r.stdout, /started 2 workers/, 'nothing was forked')
})
