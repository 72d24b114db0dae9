/**
 * compose.yaml's cluster profile (`docker compose --profile cluster up`), checked by the same rules as
 * the Sentinel deployment (test/compose.test.ts): pinned image, secrets from files, configs written on
 * the first start only on each node's own volume, no password on a command line. The scripts run for
 * real in test/compose-cluster-scripts.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { loadConfig, VARIABLES } from '../src/config.js'
import { CONTROL_USER, controlUserRules, DATA_USER, dataUserRules } from '../src/security/acl.js'
import { CLUSTER_NODES, CLUSTER_PROFILE, dependsOn, doc, entryScript, env, GATEWAYS, REDIS, script, secretsOf, SENTINELS, services, testOf, volumeAt } from './helpers/compose-file.js'

t.test('the cluster profile: 6 cluster nodes, a one-shot init that creates the cluster once, a gateway in Cluster mode', async t => {
  for (const name of CLUSTER_PROFILE) t.same(services[name]!.profiles, ['cluster'], `${name} starts only with --profile cluster`)
  for (const name of [...REDIS, ...SENTINELS, ...GATEWAYS]) {
    t.same(Object.keys(dependsOn(services[name]!)).filter(d => CLUSTER_PROFILE.includes(d)), [], `${name} does not need the cluster profile`)
  }
  const node = script('redis-node.sh')
  const firstStart = node.slice(node.indexOf('if [ ! -s "$conf" ]; then'), node.indexOf('mv "$conf.new" "$conf"'))
  t.match(firstStart, /if \[ "\$\{SKV_CLUSTER:-\}" = yes \]; then\n(\s*#.*\n)*\s*echo "cluster-enabled yes"\n\s*echo "cluster-config-file nodes\.conf"/,
    'SKV_CLUSTER=yes: cluster-enabled, nodes.conf in the data dir, written with the rest of the config on the first start only')
  t.match(firstStart, /else\n\s*echo "replica-announce-ip \$SKV_ANNOUNCE"\n\s*fi/, 'no announced host name in a cluster (the gateway matches replicas by IP)')
  const volumes = new Set<string>()
  for (const name of CLUSTER_NODES) {
    const s = services[name]!
    const e = env(s)
    t.equal(entryScript(s), 'redis-node.sh', `${name} runs compose/redis-node.sh`)
    t.equal(e.SKV_CLUSTER, 'yes', `${name} is a cluster node`)
    t.equal(e.SKV_REPLICA_OF, undefined, `${name}: no replicaof (the init service assigns roles)`)
    t.same(secretsOf(s).sort(), ['redis_control_password', 'redis_data_password', 'redis_password'], `${name} mounts the passwords the script reads`)
    t.same(e.SKV_DATA_RULES?.split(' '), dataUserRules(), `${name}: ${DATA_USER} has exactly the rules of src/security/acl.ts`)
    t.same(e.SKV_CONTROL_RULES?.split(' '), controlUserRules(), `${name}: ${CONTROL_USER} has exactly the rules of src/security/acl.ts`)
    t.equal(testOf(name), testOf('redis-master'), `${name}: the same authenticated ping healthcheck`)
    const volume = volumeAt(s, '/data')
    t.ok(volume !== undefined && doc.volumes !== undefined && volume in doc.volumes, `${name} keeps /data (config and nodes.conf) on a named volume (${volume})`)
    volumes.add(volume ?? name)
  }
  t.equal(volumes.size, CLUSTER_NODES.length, 'one volume per cluster node')

  const init = services['redis-cluster-init']!
  const initScript = script('redis-cluster-init.sh')
  t.equal(entryScript(init), 'redis-cluster-init.sh', 'the init service runs compose/redis-cluster-init.sh')
  t.equal(init.restart, 'no', 'it runs once')
  t.same(secretsOf(init), ['redis_password'], 'it mounts the nodes\' password only')
  t.equal(env(init).SKV_CLUSTER_NODES, CLUSTER_NODES.map(n => `${n}:6379`).join(','), 'it creates the cluster of the 6 nodes')
  for (const n of CLUSTER_NODES) t.equal(dependsOn(init)[n], 'service_healthy', `it waits for ${n} to be healthy`)
  t.match(initScript, /REDISCLI_AUTH=\$\(cat "\$secrets\/redis_password"\)\nexport REDISCLI_AUTH/, 'the password goes to redis-cli from its file through REDISCLI_AUTH')
  t.notMatch(initScript, /redis-cli[^\n]* (-a|--pass|--user)\b/, 'never on a redis-cli command line')
  t.match(initScript, /if \[ "\$known" != 1 \] \|\| \[ "\$assigned" != 0 \]; then[^]*?exit 0/, 'a node that knows another node or serves a slot: the cluster exists, nothing to do')
  t.ok(initScript.indexOf('exit 0') < initScript.indexOf('exec redis-cli --cluster create'), 'the check comes before the create')
  t.match(initScript, /exec redis-cli --cluster create \$addrs --cluster-replicas "\$\{SKV_CLUSTER_REPLICAS:-1\}" --cluster-yes/)

  const gw = services['gateway-cluster']!
  const e = env(gw)
  const b = gw.build
  t.equal(typeof b === 'string' ? b : b?.context, '.', 'gateway-cluster is built from the repository')
  t.same(gw.ports, ['127.0.0.1:3003:3000'], 'gateway-cluster listens on 127.0.0.1:3003')
  t.equal(e.PORT, '3000')
  t.same(dependsOn(gw), { 'redis-cluster-init': 'service_completed_successfully' }, 'it starts once the cluster is created')
  t.equal(testOf('gateway-cluster'), testOf('gateway-1'), 'the same /healthz healthcheck')
  t.same(e.REDIS_CLUSTER_NODES?.split(','), CLUSTER_NODES.map(n => `${n}:6379`), 'REDIS_CLUSTER_NODES lists the 6 nodes')
  const sentinelOnly = ['REDIS_SENTINELS', 'REDIS_MASTER_NAME', 'REDIS_SENTINEL_PASSWORD_FILE']
  const { REDIS_CLUSTER_NODES: _, ...rest } = e
  const sentinelEnv = Object.fromEntries(Object.entries(env(services['gateway-1']!)).filter(([k]) => !sentinelOnly.includes(k)))
  t.same(rest, sentinelEnv, 'otherwise the configuration of the Sentinel gateways (users, tokens, durability, rate limit)')
  t.same(secretsOf(gw).sort(), ['auth_tokens', 'redis_control_password', 'redis_data_password'], 'the secrets it reads, no sentinel password')
  const dir = mkdtempSync(path.join(os.tmpdir(), 'skv-compose-secrets-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  for (const name of Object.keys(doc.secrets ?? {})) writeFileSync(path.join(dir, name), `sample-${name}\n`)
  const known = new Set<string>(VARIABLES.map(v => v.env))
  for (const key of Object.keys(e)) t.ok(known.has(key), `gateway-cluster: ${key} is a variable of src/config.ts`)
  const local = Object.fromEntries(Object.entries(e).map(([k, v]) => [k, v.startsWith('/run/secrets/') ? path.join(dir, v.slice('/run/secrets/'.length)) : v]))
  let config: ReturnType<typeof loadConfig> | undefined
  t.doesNotThrow(() => { config = loadConfig(local) }, 'loadConfig accepts the environment')
  t.same(config?.clusterNodes, CLUSTER_NODES.map(host => ({ host, port: 6379 })), 'Cluster mode')
  t.equal(config?.redisPassword, 'sample-redis_data_password', 'the data user\'s password comes from its file')
  t.same(config?.warnings, [], 'no configuration warning')
})
