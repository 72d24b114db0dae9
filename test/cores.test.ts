/**
 * WORKERS=auto: the cores available to the process, its CPU quota (cgroup v2 cpu.max, v1
 * cfs_quota_us) respected. The cgroup files are given as fakes (pure parsing); loadConfig is checked
 * against this machine's own answer.
 */
import os from 'node:os'
import t from 'tap'
import { loadConfig } from '../src/config.js'
import { availableCores, cpuQuota, type ReadText } from '../src/cores.js'

const files = (map: Record<string, string>): ReadText => (path) => map[path]

t.test('cgroup v2: no quota, a quota, the process\'s own group first', async t => {
  t.equal(cpuQuota(files({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' })), undefined, 'max: no quota')
  t.equal(cpuQuota(files({ '/sys/fs/cgroup/cpu.max': '150000 100000\n' })), 1.5)
  t.equal(cpuQuota(files({
    '/proc/self/cgroup': '0::/system.slice/gw.service\n',
    '/sys/fs/cgroup/system.slice/gw.service/cpu.max': '200000 100000',
    '/sys/fs/cgroup/cpu.max': 'max 100000'
  })), 2, 'the group named in /proc/self/cgroup')
})

t.test('cgroup v1: -1 is no quota', async t => {
  t.equal(cpuQuota(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1\n', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n' })), undefined)
  t.equal(cpuQuota(files({ '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '50000', '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000' })), 0.5)
  t.equal(cpuQuota(files({})), undefined, 'no cgroup files at all')
})

t.test('available cores: CPUs capped by the quota, rounded down, at least 1', async t => {
  t.equal(availableCores(files({}), 8), 8, 'no quota: every CPU the process may run on')
  t.equal(availableCores(files({ '/sys/fs/cgroup/cpu.max': '250000 100000' }), 8), 2, 'quota 2.5 cores: 2')
  t.equal(availableCores(files({ '/sys/fs/cgroup/cpu.max': '400000 100000' }), 2), 2, 'quota above the CPUs: the CPUs')
  t.equal(availableCores(files({ '/sys/fs/cgroup/cpu.max': '50000 100000' }), 4), 1, 'half a core: 1')
})

t.test('WORKERS=auto resolves to this machine\'s available cores; numbers stay numbers', async t => {
  const env = { REDIS_SENTINELS: '127.0.0.1:1,127.0.0.1:2,127.0.0.1:3' }
  const auto = loadConfig({ ...env, WORKERS: 'auto' }).workers
  t.equal(auto, availableCores(), 'auto = availableCores()')
  t.ok(auto >= 1 && auto <= os.availableParallelism(), `between 1 and availableParallelism (${auto})`)
  t.equal(loadConfig({ ...env, WORKERS: '3' }).workers, 3)
  t.throws(() => loadConfig({ ...env, WORKERS: '0' }), /WORKERS: must be auto or an integer between 1 and 64/)
})
