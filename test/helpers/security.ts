/**
 * The setting of every attack test (test/security/): one real topology (1 master, 2 replicas,
 * 3 sentinels), canary keys written directly on the master, a gateway with the review's three
 * tokens, and `checkServers`, which looks at the SERVERS after an attack rather than at the HTTP
 * answer: canaries on every node, the sentinels' master, every process alive, only db0 holds keys,
 * the gateway's /healthz, and optionally which keys changed (a byte-exact snapshot by DUMP).
 */
import type { Redis } from 'ioredis'
import { startInProcess, startProcess, type GatewayProcess, type Teardown } from './gateway.js'
import { topologyFor, type Topology, type TopologyOptions } from './topology.js'

/** The review's tokens: ADMIN every right, READER read only, SESS read+write inside `session:`. */
export const TOKENS = {
  admin: 'sec-admin-token-0001',
  reader: 'sec-reader-token-0002',
  sess: 'sec-session-token-0003'
} as const
export type TokenKind = keyof typeof TOKENS
export const SESSION_PREFIX = 'session:'
export const RESERVED_PREFIX = '__skv:'
export const AUTH_TOKENS = `${TOKENS.admin}:rwxpo,${TOKENS.reader}:r,${TOKENS.sess}:rw:${SESSION_PREFIX}`

/** Written directly on the master before any attack; no route may change them. */
export const CANARIES: Record<string, string | Record<string, string> | string[]> = {
  'canary:string': 'alive',
  'canary:hash': { f: 'v', g: 'w' },
  'canary:list': ['a', 'b', 'c'],
  'other:victim': 'victim-value',
  [`${RESERVED_PREFIX}canary`]: 'reserved-value'
}

/** Minimal slice of tap's Test used here. */
/* eslint-disable @typescript-eslint/no-explicit-any */
export interface Asserter extends Teardown {
  equal: (found: any, wanted: any, message: string) => boolean
  same: (found: any, wanted: any, message: string) => boolean
  ok: (found: any, message: string) => boolean
  comment: (...args: any[]) => void
}

export interface SecurityEnv {
  topo: Topology
  url: string
  /** Set when started with `process: true`. */
  proc?: GatewayProcess
  /** The master's port at start: no attack may change it. */
  masterPort: number
  /** A client of the master (closed on teardown). */
  master: Redis
  /** Runs `fn` with a short-lived client of the node on `port`. */
  on: <T>(port: number, fn: (c: Redis) => Promise<T>) => Promise<T>
}

export interface EnvOptions {
  /** More gateway variables (AUTH_TOKENS defaults to the three tokens; '' for an open gateway). */
  env?: Record<string, string>
  /** `node dist/src/server.js` as a child process instead of in-process. */
  process?: boolean
  /** Topology options (default: the test topology's fast timings). */
  topology?: TopologyOptions
}

/** Topology, canaries, gateway; everything stopped on teardown. */
export async function securityEnv (t: Asserter, opts: EnvOptions = {}): Promise<SecurityEnv> {
  const started = Date.now()
  const topo = await topologyFor(t, opts.topology)
  const masterPort = (await topo.master()).port
  const master = topo.client(masterPort)
  t.teardown(() => master.disconnect())
  await writeCanaries(master)
  const env = { AUTH_TOKENS, ...(opts.env ?? {}) }
  if (env.AUTH_TOKENS === '') delete (env as Record<string, string>).AUTH_TOKENS
  let url: string
  let proc: GatewayProcess | undefined
  if (opts.process === true) {
    proc = await startProcess(t, topo, { LOG_LEVEL: 'warn', ...env })
    url = proc.url
  } else {
    url = (await startInProcess(t, topo, env)).url
  }
  const on = async <T>(port: number, fn: (c: Redis) => Promise<T>): Promise<T> => {
    const c = topo.client(port)
    try { return await fn(c) } finally { c.disconnect() }
  }
  t.comment(`topology (master :${masterPort}) and gateway ${url} up in ${Date.now() - started} ms`)
  return { topo, url, masterPort, master, on, ...(proc === undefined ? {} : { proc }) }
}

async function writeCanaries (master: Redis): Promise<void> {
  const p = master.multi()
  for (const [k, v] of Object.entries(CANARIES)) {
    p.del(k)
    if (typeof v === 'string') p.set(k, v)
    else if (Array.isArray(v)) p.rpush(k, ...v)
    else p.hset(k, v)
  }
  await p.exec()
  const acked = Number(await master.call('WAIT', '2', '5000'))
  if (acked !== 2) throw new Error(`canaries reached ${acked} of 2 replicas`)
}

/**
 * Puts the servers back to the baseline of securityEnv (canaries rewritten, databases other than db0
 * emptied), so that one subtest's failure (e.g. a FLUSHALL that got through) does not show up again
 * as a failure of the next, unrelated, subtest. Test infrastructure only: never through the gateway.
 */
export async function resetBaseline (env: SecurityEnv): Promise<void> {
  const keyspace = await env.master.info('keyspace')
  const dbs = [...keyspace.matchAll(/^db(\d+):/gm)].map(m => Number(m[1])).filter(n => n !== 0)
  if (dbs.length > 0) {
    await env.on(env.masterPort, async c => {
      for (const db of dbs) { await c.select(db); await c.flushdb() }
    })
  }
  await writeCanaries(env.master)
}

/** The value of `key` on a node, whatever its type, as one comparable string. */
export async function readValue (c: Redis, key: string): Promise<string> {
  const type = await c.type(key)
  switch (type) {
    case 'none': return 'none'
    case 'string': return `string:${await c.get(key)}`
    case 'hash': return `hash:${JSON.stringify(Object.entries(await c.hgetall(key)).sort())}`
    case 'list': return `list:${JSON.stringify(await c.lrange(key, 0, -1))}`
    case 'set': return `set:${JSON.stringify((await c.smembers(key)).sort())}`
    case 'zset': return `zset:${JSON.stringify(await c.zrange(key, 0, -1, 'WITHSCORES'))}`
    default: return `${type}:${JSON.stringify(await c.call('DUMP', key))}`
  }
}

const expected = (v: string | Record<string, string> | string[]): string =>
  typeof v === 'string' ? `string:${v}` : Array.isArray(v) ? `list:${JSON.stringify(v)}` : `hash:${JSON.stringify(Object.entries(v).sort())}`

/** Every key on the node (SCAN), latin1-encoded, with its exact bytes (DUMP, hex) and whether it has a TTL. */
export async function snapshot (c: Redis): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  let cursor = '0'
  do {
    const [next, keys] = await c.scanBuffer(cursor, 'COUNT', 1000)
    cursor = String(next)
    for (const k of keys) {
      const [dump, pttl] = await Promise.all([c.dumpBuffer(k), c.pttl(k)])
      out.set(k.toString('latin1'), `${dump === null ? 'gone' : dump.toString('hex')}|ttl:${pttl === -1 ? 'none' : 'set'}`)
    }
  } while (cursor !== '0')
  return out
}

/** Keys (latin1) that differ between two snapshots and for which `which(key)` is true. */
export function changedKeys (before: Map<string, string>, after: Map<string, string>, which: (key: string) => boolean = () => true): string[] {
  const out: string[] = []
  for (const k of new Set([...before.keys(), ...after.keys()])) {
    if (which(k) && before.get(k) !== after.get(k)) out.push(k)
  }
  return out.sort()
}

export const outsideSession = (key: string): boolean => !key.startsWith(SESSION_PREFIX)

export interface CheckOptions {
  /** Snapshot of the master taken before the attack: no key for which `which` is true may differ. */
  before?: Map<string, string>
  which?: (key: string) => boolean
  /** Label of the assertions. */
  what?: string
}

const quick = async <T>(p: Promise<T>, ms = 2000): Promise<T> => await Promise.race([
  p, new Promise<T>((_resolve, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref())
])

/**
 * What is wrong with the servers after an attack (empty: nothing): every redis and sentinel process
 * alive and answering PING; every sentinel names the master of the start; both replicas still
 * replicate it; the canaries are intact on the master and on both replicas (replicas polled up to
 * 2 s for lag); no database other than db0 holds a key; the gateway answers /healthz 200 (and, as a
 * process, has not exited); and (opts.before) no key chosen by opts.which changed on the master.
 */
export async function serverProblems (env: SecurityEnv, opts: CheckOptions = {}): Promise<string[]> {
  const { topo, masterPort } = env
  const problems: string[] = []
  const ask = async <T>(port: number, fn: (c: Redis) => Promise<T>): Promise<T | Error> => {
    try { return await quick(env.on(port, fn)) } catch (err) { return err as Error }
  }
  for (const p of [...topo.redis, ...topo.sentinels]) {
    if (!p.alive) { problems.push(`${p.role} :${p.port} (pid ${p.pid}) exited`); continue }
    const pong = await ask(p.port, c => c.ping())
    if (pong !== 'PONG') problems.push(`${p.role} :${p.port} does not answer PING (${String(pong)})`)
  }
  for (const s of topo.sentinels) {
    const addr = await ask(s.port, c => c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', topo.masterName))
    const got = Array.isArray(addr) ? `${String(addr[0])}:${String(addr[1])}` : String(addr)
    if (got !== `127.0.0.1:${masterPort}`) problems.push(`sentinel :${s.port} names master ${got}, not 127.0.0.1:${masterPort}`)
  }
  for (const r of topo.redis.filter(r => r.port !== masterPort)) {
    const role = await ask(r.port, c => c.call('ROLE'))
    if (!Array.isArray(role) || String(role[0]) !== 'slave' || Number(role[2]) !== masterPort) {
      problems.push(`redis :${r.port} ROLE is ${JSON.stringify(role instanceof Error ? role.message : role)}, not a replica of :${masterPort}`)
    }
  }
  for (const r of topo.redis) {
    const deadline = Date.now() + (r.port === masterPort ? 0 : 2000)
    for (;;) {
      const bad: string[] = []
      for (const [k, v] of Object.entries(CANARIES)) {
        const got = await ask(r.port, c => readValue(c, k))
        if (got instanceof Error || got !== expected(v)) bad.push(`canary ${k} on :${r.port} is ${got instanceof Error ? got.message : got}`)
      }
      if (bad.length === 0) break
      if (Date.now() >= deadline) { problems.push(...bad); break }
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }
  const keyspace = await ask(masterPort, c => c.info('keyspace'))
  const dbs = typeof keyspace === 'string' ? [...keyspace.matchAll(/^db(\d+):keys=(\d+)/gm)].filter(m => m[1] !== '0') : []
  if (dbs.length > 0) problems.push(`other databases hold keys on the master: ${dbs.map(m => `db${m[1]}=${m[2]}`).join(' ')}`)
  try {
    const h = await fetch(`${env.url}/healthz`, { signal: AbortSignal.timeout(3000) })
    await h.arrayBuffer()
    if (h.status !== 200) problems.push(`gateway /healthz answered ${h.status}`)
  } catch (err) {
    problems.push(`gateway /healthz: ${(err as Error).message}`)
  }
  if (env.proc !== undefined && env.proc.child.exitCode !== null) problems.push(`gateway process exited with ${env.proc.child.exitCode}`)
  if (opts.before !== undefined) {
    const after = await ask(masterPort, c => snapshot(c))
    if (after instanceof Error) problems.push(`snapshot of the master failed: ${after.message}`)
    else {
      const changed = changedKeys(opts.before, after, opts.which)
      if (changed.length > 0) problems.push(`keys changed on the master: ${changed.slice(0, 20).map(k => JSON.stringify(k)).join(' ')}`)
    }
  }
  return problems
}

/** Asserts serverProblems() is empty (one assertion); returns true when it is. */
export async function checkServers (t: Asserter, env: SecurityEnv, opts: CheckOptions = {}): Promise<boolean> {
  const problems = await serverProblems(env, opts)
  t.same(problems, [], `${opts.what ?? 'after the attack'}: servers intact (canaries on 3 nodes, master :${env.masterPort} per every sentinel, all processes up, /healthz 200${opts.before === undefined ? '' : ', no chosen key changed'})`)
  return problems.length === 0
}
