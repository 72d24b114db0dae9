/**
 * compose.yaml (no Docker engine here: the file is checked, not run; test/compose-scripts.test.ts
 * runs the node and sentinel entrypoints for real): 1 master, 2 replicas, 3 sentinels on a pinned
 * redis:7 image and two gateways built from this repo; every password and the tokens are compose
 * secrets read from files (no default, none on a command line or in an environment variable), the
 * sentinels require a password, and every node and sentinel keeps its config on its own volume.
 * The cluster profile: test/compose-cluster.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { loadConfig, VARIABLES } from '../src/config.js'
import { CONTROL_USER, controlUserRules, DATA_USER, dataUserRules } from '../src/security/acl.js'
import { CLUSTER_NODES, CLUSTER_PROFILE, dependsOn, doc, entryScript, env, GATEWAYS, REDIS, script, secretsOf, SENTINELS, services, testOf, text, volumeAt } from './helpers/compose-file.js'

t.test('the services: 1 master, 2 replicas, 3 sentinels on one pinned redis:7 image, two gateways built from this repo', async t => {
  t.same(Object.keys(services).filter(n => services[n]!.profiles === undefined).sort(), [...GATEWAYS, ...REDIS, ...SENTINELS].sort(), 'the Sentinel deployment is the default')
  t.same(Object.keys(services).filter(n => services[n]!.profiles !== undefined).sort(), [...CLUSTER_PROFILE].sort(), 'everything else is the cluster profile')
  const images = new Set([...REDIS, ...SENTINELS, ...CLUSTER_NODES, 'redis-cluster-init'].map(name => services[name]?.image))
  t.equal(images.size, 1, 'every node, sentinel and the cluster init run the same image')
  for (const name of [...REDIS, ...SENTINELS, ...CLUSTER_NODES, 'redis-cluster-init']) {
    t.match(services[name]?.image, /^redis:7\.\d+\.\d+(-[a-z]+)?$/, `${name}: an exact redis 7 version (got ${services[name]?.image})`)
  }
  for (const name of GATEWAYS) {
    const b = services[name]?.build
    t.equal(typeof b === 'string' ? b : b?.context, '.', `${name} is built from the repository (build: .)`)
  }
})

t.test('secrets: every password and the tokens come from files, with no default anywhere', async t => {
  const declared = doc.secrets ?? {}
  t.same(Object.keys(declared).sort(), ['auth_tokens', 'redis_control_password', 'redis_data_password', 'redis_password', 'sentinel_password'])
  for (const [name, s] of Object.entries(declared)) {
    t.match(s.file, /^\.\/secrets\//, `${name} is read from a file under ./secrets/`)
    t.equal(s.environment, undefined, `${name} does not come from an environment variable`)
  }
  t.notMatch(text, /\$\{[A-Z_]+:?-/, 'no ${VAR:-default} anywhere: nothing falls back to a known value')
  t.notMatch(text, /\$\{[A-Z_]+\}/, 'no ${VAR} either: a secret in the environment would show in `docker inspect`')
  const ignored = (file: string): string[] => readFileSync(new URL(`../${file}`, import.meta.url), 'utf8').split('\n').map(l => l.trim())
  for (const file of ['.gitignore', '.dockerignore']) t.ok(ignored(file).some(l => /^\/?secrets\/?$/.test(l)), `${file} keeps secrets/ out`)
  const SECRET_ENV = /^(REDIS_PASSWORD|REDIS_CONTROL_PASSWORD|REDIS_SENTINEL_PASSWORD|AUTH_TOKENS|REDISCLI_AUTH)$/
  for (const [name, s] of Object.entries(services)) {
    t.same(Object.keys(env(s)).filter(k => SECRET_ENV.test(k)), [], `${name}: no secret in its environment`)
    const cmd = [s.command, s.entrypoint].flat().filter(Boolean).join(' ')
    t.notMatch(cmd, /requirepass|masterauth|auth-pass|--user\b|>/, `${name}: no password on its command line`)
  }
})

t.test('the redis nodes: config written once on their own volume from the secrets, one master, two replicas of it', async t => {
  const node = script('redis-node.sh')
  t.match(node, /if \[ ! -s "\$conf" \]; then/, 'the config file is written only when there is none (a restart keeps what the sentinels rewrote)')
  t.match(node, /conf="\$dir\/redis\.conf"/, 'the config file is in the data dir')
  t.match(node, /dir=\$\{SKV_DIR:-\/data\}/, 'the data dir is /data')
  t.match(node, /echo "requirepass \$default_pw"/)
  t.match(node, /echo "masterauth \$default_pw"/, 'the password it asks for is the one it replicates with')
  t.match(node, /exec docker-entrypoint\.sh redis-server "\$conf"/, 'runs the image\'s entrypoint (drops root) with the config file only')
  const volumes = new Set<string>()
  for (const name of REDIS) {
    const s = services[name]!
    t.equal(entryScript(s), 'redis-node.sh', `${name} runs compose/redis-node.sh`)
    t.same(secretsOf(s).sort(), ['redis_control_password', 'redis_data_password', 'redis_password'], `${name} mounts the passwords the script reads`)
    t.equal(env(s).SKV_ANNOUNCE, name, `${name} announces its service name`)
    const volume = volumeAt(s, '/data')
    t.ok(volume !== undefined && doc.volumes !== undefined && volume in doc.volumes, `${name} keeps /data on a named volume (${volume})`)
    volumes.add(volume ?? name)
  }
  t.equal(volumes.size, REDIS.length, 'one volume per node')
  t.equal(env(services['redis-master']!).SKV_REPLICA_OF, undefined, 'the master replicates from nobody')
  for (const name of ['redis-replica-1', 'redis-replica-2']) {
    t.equal(env(services[name]!).SKV_REPLICA_OF, 'redis-master 6379', `${name} replicates redis-master at first`)
    t.equal(dependsOn(services[name]!)['redis-master'], 'service_healthy', `${name} starts once the master is healthy`)
  }
})

t.test('every redis node creates the gateway\'s ACL users with the rules of src/security/acl.ts', async t => {
  const node = script('redis-node.sh')
  t.match(node, new RegExp(`echo "user ${DATA_USER} reset on >\\$data_pw \\$SKV_DATA_RULES"`), `${DATA_USER}: reset, enabled, its password, its rules`)
  t.match(node, new RegExp(`echo "user ${CONTROL_USER} reset on >\\$control_pw \\$SKV_CONTROL_RULES"`), `${CONTROL_USER}: reset, enabled, its password, its rules`)
  t.match(node, /data_pw=\$\(cat "\$secrets\/redis_data_password"\)/)
  t.match(node, /control_pw=\$\(cat "\$secrets\/redis_control_password"\)/)
  for (const name of REDIS) {
    const e = env(services[name]!)
    t.same(e.SKV_DATA_RULES?.split(' '), dataUserRules(), `${name}: ${DATA_USER} has exactly the rules of src/security/acl.ts`)
    t.same(e.SKV_CONTROL_RULES?.split(' '), controlUserRules(), `${name}: ${CONTROL_USER} has exactly the rules of src/security/acl.ts`)
  }
})

t.test('the sentinels: config written once on their own volume, a password, host names, quorum 2 of 3', async t => {
  const sentinel = script('redis-sentinel.sh')
  t.match(sentinel, /if \[ ! -s "\$conf" \]; then/, 'the config file is written only when there is none (a restart keeps the failover\'s outcome)')
  t.match(sentinel, /conf="\$dir\/sentinel\.conf"/)
  t.match(sentinel, /dir=\$\{SKV_DIR:-\/data\}/)
  const lines = [...sentinel.matchAll(/^\s*echo "([^"]*)"/gm)].map(m => m[1] ?? '')
  const at = (re: RegExp): number => lines.findIndex(l => re.test(l))
  t.ok(at(/^requirepass \$sentinel_pw$/) >= 0, 'clients must authenticate (requirepass)')
  t.ok(at(/^sentinel sentinel-pass \$sentinel_pw$/) >= 0, 'and the sentinels to each other (sentinel-pass)')
  t.ok(at(/^sentinel auth-pass \$name \$default_pw$/) >= 0, 'the nodes\' password (auth-pass)')
  t.ok(at(/^sentinel resolve-hostnames yes$/) >= 0 && at(/^sentinel resolve-hostnames yes$/) < at(/^sentinel monitor /), 'resolve-hostnames comes before the monitor line that needs it')
  t.ok(at(/^sentinel announce-hostnames yes$/) >= 0, 'announces host names')
  t.ok(at(/^sentinel announce-ip \$SKV_ANNOUNCE$/) >= 0)
  t.ok(at(/^sentinel monitor \$name \$SKV_MASTER \$SKV_QUORUM$/) >= 0)
  t.match(sentinel, /exec docker-entrypoint\.sh redis-server "\$conf" --sentinel/)
  const master = env(services['gateway-1']!).REDIS_MASTER_NAME
  const volumes = new Set<string>()
  for (const name of SENTINELS) {
    const s = services[name]!
    const e = env(s)
    t.equal(entryScript(s), 'redis-sentinel.sh', `${name} runs compose/redis-sentinel.sh`)
    t.same(secretsOf(s).sort(), ['redis_password', 'sentinel_password'], `${name} mounts the two passwords it needs`)
    t.same([e.SKV_MASTER_NAME, e.SKV_MASTER, e.SKV_QUORUM], [master, 'redis-master 6379', '2'], `${name} monitors ${master} at redis-master:6379, quorum 2`)
    t.equal(e.SKV_ANNOUNCE, name, `${name} announces its own service name`)
    t.equal(dependsOn(s)['redis-master'], 'service_healthy', `${name} starts once the master is healthy`)
    const volume = volumeAt(s, '/data')
    t.ok(volume !== undefined && doc.volumes !== undefined && volume in doc.volumes, `${name} keeps /data on a named volume (${volume})`)
    volumes.add(volume ?? name)
  }
  t.equal(volumes.size, SENTINELS.length, 'one volume per sentinel')
  t.equal(SENTINELS.length % 2, 1, 'an odd number of sentinels')
})

t.test('healthchecks: redis-cli ping with the password from its secret file, /healthz through node fetch for the gateways', async t => {
  for (const name of REDIS) t.match(testOf(name), /^CMD-SHELL REDISCLI_AUTH="\$\(cat \/run\/secrets\/redis_password\)" redis-cli ping /, `${name}: redis-cli ping, authenticated`)
  for (const name of SENTINELS) t.match(testOf(name), /^CMD-SHELL REDISCLI_AUTH="\$\(cat \/run\/secrets\/sentinel_password\)" redis-cli -p 26379 ping /, `${name}: redis-cli -p 26379 ping, authenticated`)
  for (const name of [...REDIS, ...SENTINELS]) t.match(testOf(name), /\| grep -q PONG$/, `${name}: an error reply (NOAUTH, LOADING) is unhealthy`)
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

t.test('the gateways\' environment: only variables of the config module, passwords from the mounted secrets, a configuration it accepts', async t => {
  const known = new Set<string>(VARIABLES.map(v => v.env))
  // The secret files as compose mounts them, with sample content.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'skv-compose-secrets-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  for (const name of Object.keys(doc.secrets ?? {})) writeFileSync(path.join(dir, name), `sample-${name}\n`)
  for (const name of GATEWAYS) {
    const e = env(services[name]!)
    for (const key of Object.keys(e)) t.ok(known.has(key), `${name}: ${key} is a variable of src/config.ts`)
    t.same(e.REDIS_SENTINELS?.split(','), SENTINELS.map(s => `${s}:26379`), `${name}: REDIS_SENTINELS lists the 3 sentinel services`)
    t.ok(Number(e.RATE_LIMIT_MAX) > 0, `${name}: rate limiting is on (RATE_LIMIT_MAX=${e.RATE_LIMIT_MAX}), its counters shared in Redis`)
    t.equal(e.REDIS_USERNAME, DATA_USER, `${name}: client commands as the data user`)
    t.equal(e.REDIS_CONTROL_USERNAME, CONTROL_USER, `${name}: its own checks as the control user`)
    const files = { REDIS_PASSWORD_FILE: 'redis_data_password', REDIS_CONTROL_PASSWORD_FILE: 'redis_control_password', REDIS_SENTINEL_PASSWORD_FILE: 'sentinel_password', AUTH_TOKENS_FILE: 'auth_tokens' }
    for (const [variable, secret] of Object.entries(files)) {
      t.equal(e[variable], `/run/secrets/${secret}`, `${name}: ${variable} is the mounted ${secret} secret`)
      t.ok(secretsOf(services[name]!).includes(secret), `${name} mounts ${secret}`)
    }
    const local = Object.fromEntries(Object.entries(e).map(([k, v]) => [k, v.startsWith('/run/secrets/') ? path.join(dir, v.slice('/run/secrets/'.length)) : v]))
    let config: ReturnType<typeof loadConfig> | undefined
    t.doesNotThrow(() => { config = loadConfig(local) }, `${name}: loadConfig accepts the environment`)
    t.same(config?.sentinels, SENTINELS.map(host => ({ host, port: 26379 })))
    t.equal(config?.redisPassword, 'sample-redis_data_password', `${name}: the data user's password comes from its file`)
    t.equal(config?.controlPassword, 'sample-redis_control_password')
    t.equal(config?.sentinelPassword, 'sample-sentinel_password')
    t.same(config?.warnings, [], `${name}: no configuration warning`)
  }
})
