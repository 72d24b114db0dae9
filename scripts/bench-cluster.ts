/**
 * The Cluster-mode target of `npm run bench` (issue 16): a Redis Cluster of 3 masters + 3 replicas
 * (test/helpers/cluster.ts `startCluster`, the same ACL users as the Sentinel topology) and what a
 * gateway needs to run in front of it, as `npm run demo -- --cluster` does (scripts/demo.ts).
 * The gateway itself is started by scripts/bench-targets.ts like the other variants, so that
 * "gateway-cluster" differs from "gateway" only in the Redis it is pointed at.
 */
import { startCluster, type Cluster } from '../test/helpers/cluster.js'
import { aclEnv } from '../test/helpers/gateway.js'
import { say } from './bench-lib.js'

/** Which targets to run: BENCH_ONLY=floor,gateway,gateway-cluster (comma list); all when unset. */
export function onlyTargets (value: string | undefined, known: readonly string[]): Set<string> | undefined {
  if (value === undefined || value.trim() === '') return undefined
  const names = value.split(',').map(s => s.trim()).filter(s => s !== '')
  const unknown = names.filter(n => !known.includes(n))
  if (unknown.length > 0) { say(`bench: BENCH_ONLY: unknown target ${unknown.join(', ')} (known: ${known.join(', ')})`); process.exit(2) }
  return new Set(names)
}

/** Starts the cluster; the caller stops it (also when a later step fails). */
export async function startBenchCluster (elapsed: () => string): Promise<Cluster> {
  const c = await startCluster()
  say(`[${elapsed()}] Redis Cluster up: ${c.nodes.length} nodes (3 masters + 3 replicas), REDIS_CLUSTER_NODES=${c.seedList}`)
  return c
}

/** The gateway's Redis variables in front of `c` (no REDIS_SENTINELS: the two are exclusive). */
export function clusterRedisEnv (c: Cluster): Record<string, string> {
  return { REDIS_CLUSTER_NODES: c.seedList, ...aclEnv(c.acl) }
}
