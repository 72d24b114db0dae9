import t from 'tap'
import { MISSING_BINARIES_MESSAGE, startTopology, topologyFor } from './helpers/topology.js'
import { kv, newClient, parseRole } from './helpers/topology-procs.js'

const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

t.test('real sentinel topology: start, replicate, failover, kill/restart', async (t) => {
  const t0 = Date.now()
  const topo = await topologyFor(t, { log: (l) => t.comment(l) })
  t.comment(`startTopology took ${Date.now() - t0} ms`)

  t.equal(topo.redis.length, 3)
  t.equal(topo.sentinels.length, 3)
  t.equal(topo.sentinelList, topo.sentinels.map((s) => `127.0.0.1:${s.port}`).join(','))
  const [m0, r1, r2] = topo.redis
  if (!m0 || !r1 || !r2) throw new Error('expected 3 redis nodes')

  t.same(await topo.master(), { host: '127.0.0.1', port: m0.port }, 'sentinels report redis[0] as master')
  t.equal(await topo.masterProc(), m0)

  for (const r of [r1, r2]) {
    const c = topo.client(r.port)
    try {
      const role = parseRole(await c.call('ROLE'))
      t.match(role, { role: 'slave', port: m0.port, state: 'connected' }, `replica :${r.port} connected`)
    } finally {
      await c.quit()
    }
  }

  // a write on the master, acknowledged by both replicas, is readable on them
  const mc = topo.client(m0.port)
  try {
    await mc.set('topo:k', 'v1')
    t.equal(await mc.call('WAIT', '2', '1000'), 2, 'WAIT 2 1000 acks both replicas')
  } finally {
    await mc.quit()
  }
  for (const r of [r1, r2]) {
    const c = topo.client(r.port)
    try {
      t.equal(await c.get('topo:k'), 'v1', `replica :${r.port} has the write`)
    } finally {
      await c.quit()
    }
  }

  // failover: the master moves to a replica, all sentinels agree
  const fo = await topo.failover()
  t.comment(`failover :${fo.from} -> :${fo.to} took ${fo.ms} ms`)
  t.equal(fo.from, m0.port)
  t.not(fo.to, m0.port)
  t.ok([r1.port, r2.port].includes(fo.to), 'new master is one of the replicas')
  for (const s of topo.sentinels) {
    const c = topo.client(s.port)
    try {
      t.same(await c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', topo.masterName), ['127.0.0.1', String(fo.to)],
        `sentinel :${s.port} agrees`)
      // what sentinels report for the old master right after the switch
      const reps = (await c.call('SENTINEL', 'REPLICAS', topo.masterName)) as unknown[]
      const old = reps.map(kv).find((e) => Number(e.port) === m0.port)
      t.comment(`sentinel :${s.port} old master entry right after failover: flags=${old?.flags} role-reported=${old?.['role-reported']}`)
    } finally {
      await c.quit()
    }
  }

  const tc = Date.now()
  await topo.waitConverged()
  t.comment(`converged (old master demoted) ${Date.now() - tc} ms after failover() returned`)
  const oc = topo.client(m0.port)
  try {
    t.match(parseRole(await oc.call('ROLE')), { role: 'slave', port: fo.to, state: 'connected' }, 'old master demoted to replica')
    t.equal(await oc.get('topo:k'), 'v1', 'old master still has the data after resync')
  } finally {
    await oc.quit()
  }
  t.equal((await topo.masterProc()).port, fo.to)

  // kill a replica and restart it
  const victim = topo.redis.find((r) => r.port !== fo.to)
  if (!victim) throw new Error('no replica to kill')
  const oldPid = victim.pid
  await topo.kill(victim)
  t.equal(victim.alive, false)
  t.notOk(pidAlive(oldPid), 'killed pid is gone')
  await topo.kill(victim) // killing a dead node is a no-op

  await topo.restart(victim)
  t.equal(victim.alive, true)
  t.not(victim.pid, oldPid)
  t.ok(pidAlive(victim.pid))
  const tr = Date.now()
  await topo.waitConverged()
  t.comment(`restarted replica converged in ${Date.now() - tr} ms`)
  const vc = topo.client(victim.port)
  try {
    t.match(parseRole(await vc.call('ROLE')), { role: 'slave', port: fo.to, state: 'connected' }, 'restarted node is a connected replica')
    t.equal(await vc.get('topo:k'), 'v1', 'restarted replica resynced the data')
  } finally {
    await vc.quit()
  }

  const pids = [...topo.redis, ...topo.sentinels].map((p) => p.pid)
  await topo.stop()
  await topo.stop() // idempotent
  t.ok(pids.every((p) => !pidAlive(p)), 'stop() leaves no process behind')
  t.ok([...topo.redis, ...topo.sentinels].every((p) => !p.alive))
})

t.test('password + sentinel password', async (t) => {
  const topo = await topologyFor(t, { password: 'redis-pw', sentinelPassword: 'sentinel-pw', replicas: 1 })
  t.equal(topo.redis.length, 2)
  const m = await topo.masterProc()
  t.equal(m, topo.redis[0])
  const c = topo.client(m.port)
  try {
    await c.set('pw:k', 'v')
    t.equal(await c.call('WAIT', '1', '1000'), 1)
  } finally {
    await c.quit()
  }
  for (const s of topo.sentinels) {
    const sc = topo.client(s.port)
    try {
      t.equal((await sc.call('SENTINEL', 'SENTINELS', topo.masterName) as unknown[]).length, 2, 'sentinels found each other')
    } finally {
      await sc.quit()
    }
  }
  // without the password both kinds of node refuse
  for (const port of [m.port, topo.sentinels[0]?.port ?? 0]) {
    const anon = newClient(port, undefined, true)
    try {
      await t.rejects(anon.call('PING'), /NOAUTH/, `:${port} requires auth`)
    } finally {
      anon.disconnect()
    }
  }
})

t.test('startup failures are clear errors', async (t) => {
  await t.rejects(startTopology({ redisConf: ['no-such-directive yes'] }),
    /redis 127\.0\.0\.1:\d+ \(pid \d+\) exited during startup; log tail:[\s\S]*Bad directive/)
  const path = process.env.PATH
  process.env.PATH = '/nonexistent'
  try {
    await t.rejects(startTopology(), { message: MISSING_BINARIES_MESSAGE })
  } finally {
    process.env.PATH = path
  }
})
