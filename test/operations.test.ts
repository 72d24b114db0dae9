// Operations: Prometheus metrics move with traffic, SIGTERM finishes in-flight requests, and an
// overloaded event loop sheds load with 503 + Retry-After instead of queueing.
import t from 'tap'
import { startInProcess, startProcess } from './helpers/gateway.js'
import { SLOW_PUT_BYTES, slowPut } from './helpers/kv-client.js'
import { topologyFor } from './helpers/topology.js'

const topo = await topologyFor(t)

/** The value of one sample line of a Prometheus exposition, or 0 when absent. */
function sample (text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue
    if (want.every(w => line.includes(w))) sum += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return sum
}

t.test('metrics count requests by route, status and role, and Redis calls per node', async t => {
  // Every GET must reach Redis here: the near-cache (its metrics: test/near-cache.test.ts) is off.
  const gw = await startInProcess(t, topo, { NEAR_CACHE: 'false' })
  const scrape = async (): Promise<string> => await (await fetch(`${gw.url}/metrics`)).text()
  await fetch(`${gw.url}/kv/m%3A1`, { method: 'PUT', body: 'v' })
  const before = await scrape()
  for (let i = 0; i < 5; i++) await (await fetch(`${gw.url}/kv/m%3A1`)).arrayBuffer()
  await (await fetch(`${gw.url}/kv/m%3Amissing?consistency=strong`)).arrayBuffer()
  const after = await scrape()
  const reads = (text: string): number => sample(text, 'skv_http_requests_total', { route: '/kv/:key', method: 'GET', status: '200', served_by: 'replica' })
  t.equal(reads(after) - reads(before), 5, 'five replica reads counted')
  t.equal(sample(after, 'skv_http_requests_total', { route: '/kv/:key', status: '404', served_by: 'master' }) -
    sample(before, 'skv_http_requests_total', { route: '/kv/:key', status: '404', served_by: 'master' }), 1, 'the strong 404 counted')
  t.ok(sample(after, 'skv_http_request_duration_seconds_count', { route: '/kv/:key', method: 'GET' }) >= 6, 'latency histogram filled')
  const redisReads = (text: string): number => sample(text, 'skv_redis_command_duration_seconds_count', { op: 'read', outcome: 'ok' })
  t.equal(redisReads(after) - redisReads(before), 6, 'one Redis read per GET')
  t.match(after, /skv_breaker_state\{node="127\.0\.0\.1:\d+"\} 0/, 'breaker state per node')
  t.match(after, /skv_replica_lag_bytes\{replica="127\.0\.0\.1:\d+"\} \d+/, 'replica lag per replica')
  t.match(after, /skv_process_resident_memory_bytes \d+/, 'default process metrics')
  t.match(after, /skv_failovers_total 0/)
})

t.test('SIGTERM lets an in-flight request finish, then the process exits 0', async t => {
  const gw = await startProcess(t, topo, { LOG_LEVEL: 'info' })
  // A PUT whose body arrives slowly: it is in flight when SIGTERM comes.
  const answer = slowPut(gw.url, '/kv/shutdown%3Ainflight', () => gw.child.kill('SIGTERM'))
  const r = await answer.catch((err: Error) => { t.comment(gw.output().slice(-3000)); throw err })
  t.equal(r.status, 201, `the in-flight PUT completed: ${r.body}`)
  const code = await gw.stop()
  t.equal(code, 0, 'exit code 0', { output: gw.output().slice(-1500) })
  const m = topo.client((await topo.master()).port)
  t.teardown(() => m.disconnect())
  t.equal((await m.getBuffer('shutdown:inflight'))?.length, SLOW_PUT_BYTES, 'the value was stored whole')
  t.match(gw.output(), /shutting down/)
  // New connections are refused after the shutdown.
  await t.rejects(fetch(`${gw.url}/healthz`))
})

t.test('an overloaded event loop sheds load with 503 + Retry-After, and recovers', async t => {
  const gw = await startInProcess(t, topo, { EVENT_LOOP_MAX_DELAY_MS: '100' })
  const waitReady = async (): Promise<boolean> => {
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      const r = await fetch(`${gw.url}/readyz`)
      await r.arrayBuffer()
      if (r.status === 200) return true
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    return false
  }
  t.ok(await waitReady(), 'ready before the stalls (start-up itself may lag the loop)')
  // Stall this process's event loop (the gateway's too: it runs in-process) again and again,
  // asking between stalls: a bounded loop of 10 rounds.
  let shed: Response | undefined
  for (let round = 0; round < 10 && shed === undefined; round++) {
    const until = Date.now() + 300
    while (Date.now() < until) { /* busy */ }
    const r = await fetch(`${gw.url}/kv/x`)
    if (r.status === 503) shed = r
    else await r.arrayBuffer()
  }
  t.ok(shed, 'a request during the stalls was shed')
  t.equal(shed?.headers.get('retry-after'), '1')
  t.same((await shed?.json() as { error: { code: string } }).error.code, 'GW_ERR_OVERLOADED')
  t.ok(await waitReady(), 'ready again once the loop is idle')
})
