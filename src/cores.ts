/**
 * How many cores this process may use: what `WORKERS=auto` resolves to.
 *
 * os.availableParallelism() counts the CPUs the process may be scheduled on (its affinity mask, e.g.
 * `docker --cpuset-cpus`), but not a CPU quota (`docker --cpus=1.5`, a Kubernetes CPU limit), which
 * lets the container run on every core yet only for part of the time. More workers than the quota
 * only get throttled together, so the quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` /
 * `cpu.cfs_period_us`) caps the count, rounded down, never below 1.
 */
import { readFileSync } from 'node:fs'
import os from 'node:os'

/** Reads a file, or undefined when it is not there (no cgroup, another cgroup version). */
export type ReadText = (path: string) => string | undefined

const readText: ReadText = (path) => {
  try { return readFileSync(path, 'utf8') } catch { return undefined }
}

/** The CPU quota in cores (e.g. 1.5), or undefined when there is none. */
export function cpuQuota (read: ReadText = readText): number | undefined {
  // cgroup v2: "max 100000" (no quota) or "150000 100000". The process's own group first (a
  // container sees its group at the root; a systemd service sees its path in /proc/self/cgroup).
  const self = /^0::(\/\S*)$/m.exec(read('/proc/self/cgroup') ?? '')?.[1]
  for (const file of [...(self !== undefined && self !== '/' ? [`/sys/fs/cgroup${self}/cpu.max`] : []), '/sys/fs/cgroup/cpu.max']) {
    const v2 = read(file)?.trim().split(/\s+/)
    if (v2 === undefined) continue
    if (v2[0] === 'max') return undefined
    const quota = Number(v2[0])
    const period = Number(v2[1] ?? 100000)
    return quota > 0 && period > 0 ? quota / period : undefined
  }
  // cgroup v1: a quota of -1 means none.
  for (const dir of ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct']) {
    const quota = Number(read(`${dir}/cpu.cfs_quota_us`)?.trim())
    const period = Number(read(`${dir}/cpu.cfs_period_us`)?.trim())
    if (Number.isFinite(quota) && Number.isFinite(period)) return quota > 0 && period > 0 ? quota / period : undefined
  }
  return undefined
}

/** Cores available to this process: the CPUs it may run on, capped by its CPU quota (at least 1). */
export function availableCores (read: ReadText = readText, parallelism: number = os.availableParallelism()): number {
  const quota = cpuQuota(read)
  const cores = quota === undefined ? parallelism : Math.min(parallelism, Math.floor(quota))
  return Math.max(1, cores)
}
