/**
 * compose.yaml (no Docker engine here: the file is checked, not run): 1 master, 2 replicas,
 * 3 sentinels on redis:7 and two gateways built from this repo; ports, healthchecks, start order,
 * hostname announcing, and that the gateways' environment is made of the config module's variables
 * and is a configuration loadConfig accepts.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { parse } from 'yaml'
import { loadConfig, VARIABLES } from '../src/config.js'
import { CONTROL_USER, controlUserRules, DATA_USER, dataUserRules } from '../src/security/acl.js'

interface Service {
  image?: string
  build?: string | { context: string }
  command?: string[] | string
  entrypoint?: string[] | string
  environment?: Record<string, string | number | boolean | null> | string[]
  ports?: Array<string | { published: string | number; target: number; host_ip?: string }>
  healthcheck?: { test: string[] | string; interval?: string; timeout?: string; retries?: number }
  depends_on?: string[] | Record<string, { condition?: string }>
}

const text = readFileSync(new URL('../compose.yaml', import.meta.url), 'utf8')
const doc = parse(text, { merge: true }) as { services: Record<string, Service> }
const services = doc.services

const REDIS = ['redis-master', 'redis-replica-1', 'redis-replica-2']
const SENTINELS = ['sentinel-1', 'sentinel-2', 'sentinel-3']
const GATEWAYS = ['gateway-1', 'gateway-2']

/** `${NAME:-default}` / `${NAME}` / `$$` as compose interpolates them with an empty environment. */
function interpolate (s: string): string {
  return s.replace(/\$\$|\$\{([A-Z_][A-Z0-9_]*)(?::?-([^}]*))?\}/g, (m, _name: string | undefined, def: string | undefined) => m === '$$' ? '$' : (def ?? ''))
}
const args = (s: Service): string[] => (Array.isArray(s.command) ? s.command : (s.command ?? '').split(/\s+/)).map(interpolate)
const env = (s: Service): Record<string, string> => {
  const e = s.environment ?? {}
  const pairs = Array.isArray(e) ? e.map(kv => kv.split('=', 2) as [string, string]) : Object.entries(e).map(([k, v]) => [k, v === null ? '' : String(v)] as [string, string])
  return Object.fromEntries(pairs.map(([k, v]) => [k, interpolate(v ?? '')]))
}
const dependsOn = (s: Service): Record<string, string | undefined> => {
  const d = s.depends_on ?? {}
  return Array.isArray(d) ? Object.fromEntries(d.map(n => [n, undefined])) : Object.fromEntries(Object.entries(d).map(([k, v]) => [k, v.condition]))
}
/** The value list after `--sentinel <name>` in a sentinel command, e.g. opt(cmd, 'monitor'). */
const sentinelOpt = (cmd: string[], name: string): string[] | undefined => {
  for (let i = 0; i < cmd.length - 1; i++) {
    if (cmd[i] === '--sentinel' && cmd[i + 1] === name) {
      const rest = cmd.slice(i + 2)
      const end = rest.findIndex(a => a.startsWith('--'))
      return end === -1 ? rest : rest.slice(0, end)
    }
  }
  return undefined
}
const flag = (cmd: string[], name: string): string[] | undefined => {
  const i = cmd.indexOf(`--${name}`)
  if (i === -1) return undefined
  const rest = cmd.slice(i + 1)
  const end = rest.findIndex(a => a.startsWith('--'))
  return end === -1 ? rest : rest.slice(0, end)
}

t.test('the services: 1 master, 2 replicas, 3 sentinels on redis:7, two gateways built from this repo', async t => {
  t.same(Object.keys(services).sort(), [...GATEWAYS, ...REDIS, ...SENTINELS].sort())
  for (const name of [...REDIS, ...SENTINELS]) t.match(services[name]?.image, /^redis:7(\.|$)/, `${name} runs redis:7`)
  for (const name of GATEWAYS) {
    const b = services[name]?.build
    t.equal(typeof b === 'string' ? b : b?.context, '.', `${name} is built from the repository (build: .)`)
  }
})

t.test('the redis nodes: one master, two replicas of it, every node announcing its service name', async t => {
  for (const name of REDIS) {
    const cmd = args(services[name]!)
    t.equal(cmd[0], 'redis-server', `${name} runs redis-server`)
    t.same(flag(cmd, 'replica-announce-ip'), [name], `${name} announces its service name`)
    t.same(flag(cmd, 'requirepass'), flag(cmd, 'masterauth'), `${name}: the password it asks for is the one it replicates with`)
    t.ok(flag(cmd, 'requirepass')?.[0], `${name} requires a password`)
  }
  t.equal(flag(args(services['redis-master']!), 'replicaof'), undefined, 'the master replicates from nobody')
  for (const name of ['redis-replica-1', 'redis-replica-2']) {
    t.same(flag(args(services[name]!), 'replicaof'), ['redis-master', '6379'], `${name} replicates redis-master`)
    t.equal(dependsOn(services[name]!)['redis-master'], 'service_healthy', `${name} starts once the master is healthy`)
  }
})

/** Each `--user <name> <rules...>` of a redis command: name -> rules. */
function aclUsers (cmd: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>()
  cmd.forEach((a, i) => {
    if (a !== '--user') return
    const rest = cmd.slice(i + 1)
    const end = rest.findIndex(x => x.startsWith('--'))
    const [name, ...rules] = end === -1 ? rest : rest.slice(0, end)
    out.set(name!, rules)
  })
  return out
}

t.test('every redis node creates the gateway\'s ACL users with the rules of src/security/acl.ts', async t => {
  for (const name of REDIS) {
    const users = aclUsers(args(services[name]!))
    for (const [user, rules] of [[DATA_USER, dataUserRules()], [CONTROL_USER, controlUserRules()]] as const) {
      const got = users.get(user) ?? []
      t.same(got.slice(0, 2), ['reset', 'on'], `${name}: ${user} starts from reset, enabled`)
      t.match(got[2] ?? '', /^>.+/, `${name}: ${user} has a password`)
      t.same(got.slice(3), rules, `${name}: ${user} has exactly the rules of src/security/acl.ts`)
    }
    t.ok(flag(args(services[name]!), 'requirepass')?.[0], `${name}: the default user (sentinels, replication) has a password`)
  }
})

t.test('the sentinels: monitor the master by name, resolve and announce host names, quorum 2 of 3', async t => {
  const master = env(services['gateway-1']!).REDIS_MASTER_NAME
  const password = flag(args(services['redis-master']!), 'requirepass')?.[0]
  for (const name of SENTINELS) {
    const s = services[name]!
    const cmd = args(s)
    t.ok(cmd.includes('--sentinel') && cmd[0] === 'redis-server' && /sentinel\.conf$/.test(cmd[1] ?? ''), `${name} runs redis-server <conf> --sentinel`)
    t.same(flag(cmd, 'port'), ['26379'], `${name} listens on 26379`)
    t.same(sentinelOpt(cmd, 'monitor'), [master, 'redis-master', '6379', '2'], `${name} monitors ${master} at redis-master:6379, quorum 2`)
    t.same(sentinelOpt(cmd, 'resolve-hostnames'), ['yes'], `${name} resolves host names`)
    t.same(sentinelOpt(cmd, 'announce-hostnames'), ['yes'], `${name} announces host names`)
    t.same(sentinelOpt(cmd, 'announce-ip'), [name], `${name} announces its own service name`)
    t.same(sentinelOpt(cmd, 'auth-pass'), [master, password], `${name} authenticates to the nodes with their password`)
    t.ok(cmd.indexOf('resolve-hostnames') < cmd.indexOf('monitor'), `${name}: resolve-hostnames comes before the monitor line that needs it`)
    t.equal(dependsOn(s)['redis-master'], 'service_healthy', `${name} starts once the master is healthy`)
    const entry = Array.isArray(s.entrypoint) ? s.entrypoint.join(' ') : s.entrypoint ?? ''
    t.match(entry, /sentinel\.conf/, `${name} gets a writable config file before it starts`)
    t.match(entry, /docker-entrypoint\.sh/, `${name} still runs the image's entrypoint (drops root)`)
  }
  t.equal(SENTINELS.length % 2, 1, 'an odd number of sentinels')
})

t.test('healthchecks: redis-cli ping for Redis and the sentinels, /healthz through node fetch for the gateways', async t => {
  const testOf = (name: string): string => {
    const h = services[name]?.healthcheck?.test
    return Array.isArray(h) ? h.join(' ') : h ?? ''
  }
  for (const name of REDIS) t.match(testOf(name), /redis-cli ping/, `${name}: redis-cli ping`)
  for (const name of SENTINELS) t.match(testOf(name), /redis-cli -p 26379 ping/, `${name}: redis-cli -p 26379 ping`)
  for (const name of [...REDIS, ...SENTINELS]) t.match(testOf(name), /grep -q PONG/, `${name}: an error reply (NOAUTH, LOADING) is unhealthy`)
  for (const name of REDIS) t.ok(env(services[name]!).REDISCLI_AUTH, `${name}: redis-cli authenticates (REDISCLI_AUTH)`)
  for (const name of GATEWAYS) {
    const test = testOf(name)
    t.match(test, /^CMD node -e /, `${name}: node (the slim image has no curl)`)
    t.match(test, /fetch\('http:\/\/127\.0\.0\.1:3000\/healthz'\)/, `${name}: fetches /healthz on its own port`)
    t.match(test, /process\.exit\(r\.ok \? 0 : 1\), \(\) => process\.exit\(1\)/, `${name}: exits non-zero on a bad status or no answer`)
  }
})

t.test('the gateways: ports 3001 and 3002, started after healthy sentinels, same configuration', async t => {
  const published = GATEWAYS.map(name => {
    const ports = services[name]?.ports ?? []
    t.equal(ports.length, 1, `${name} publishes one port`)
    const p = ports[0]
    if (typeof p === 'object') return { published: Number(p.published), target: p.target }
    const parts = String(p).split(':')
    return { published: Number(parts[parts.length - 2]), target: Number(parts[parts.length - 1]) }
  })
  t.same(published.map(p => p.published), [3001, 3002], 'gateway-1 on 3001, gateway-2 on 3002')
  for (const [i, name] of GATEWAYS.entries()) {
    const e = env(services[name]!)
    t.equal(published[i]!.target, Number(e.PORT), `${name}: the published port goes to PORT (${e.PORT})`)
    t.equal(e.HOST, '0.0.0.0', `${name} listens on every interface of its container`)
    const deps = dependsOn(services[name]!)
    for (const s of SENTINELS) t.equal(deps[s], 'service_healthy', `${name} waits for ${s} to be healthy`)
  }
  t.same(env(services['gateway-1']!), env(services['gateway-2']!), 'both gateways run the same configuration (stateless, horizontally scaled)')
})

t.test('the gateways\' environment: only variables of the config module, and a configuration it accepts', async t => {
  const known = new Set<string>(VARIABLES.map(v => v.env))
  for (const name of GATEWAYS) {
    const e = env(services[name]!)
    for (const key of Object.keys(e)) t.ok(known.has(key), `${name}: ${key} is a variable of src/config.ts`)
    const sentinels = e.REDIS_SENTINELS?.split(',') ?? []
    t.same(sentinels, SENTINELS.map(s => `${s}:26379`), `${name}: REDIS_SENTINELS lists the 3 sentinel services`)
    t.ok(Number(e.RATE_LIMIT_MAX) > 0, `${name}: rate limiting is on (RATE_LIMIT_MAX=${e.RATE_LIMIT_MAX}), its counters shared in Redis`)
    const users = aclUsers(args(services['redis-master']!))
    t.equal(e.REDIS_USERNAME, DATA_USER, `${name}: client commands as the data user`)
    t.equal(e.REDIS_PASSWORD, users.get(DATA_USER)?.[2]?.slice(1), `${name}: REDIS_PASSWORD is the data user's password`)
    t.equal(e.REDIS_CONTROL_USERNAME, CONTROL_USER, `${name}: its own checks as the control user`)
    t.equal(e.REDIS_CONTROL_PASSWORD, users.get(CONTROL_USER)?.[2]?.slice(1), `${name}: REDIS_CONTROL_PASSWORD is the control user's password`)
    let config: ReturnType<typeof loadConfig> | undefined
    t.doesNotThrow(() => { config = loadConfig(e) }, `${name}: loadConfig accepts the environment`)
    t.same(config?.sentinels, SENTINELS.map(host => ({ host, port: 26379 })))
    t.same(config?.warnings, [], `${name}: no configuration warning`)
  }
})
