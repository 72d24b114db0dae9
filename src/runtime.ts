import { setFlagsFromString } from 'node:v8'

/**
 * How the gateway's Node.js process is run in production.
 *
 * V8 otherwise grows its heap generously under load (a gateway at 50 connections peaked at
 * 180-205 MB RSS); with these flags it stays near 95-130 MB for about 5-10% less throughput
 * (measured with `npm run bench`, which runs the gateway with them). This is their one definition:
 * the Dockerfile sets them as NODE_OPTIONS and `npm start` passes them to node; test/dockerfile.test.ts
 * and test/runtime.test.ts check that both use exactly these.
 */
export const PRODUCTION_NODE_OPTIONS = '--max-old-space-size=256 --max-semi-space-size=4'

/**
 * V8 flags NODE_OPTIONS does not accept, so the process sets them itself before any load
 * (`applyRuntimeV8Flags`, in src/server.ts before the app is built: `npm start`, Docker, every
 * worker; not in processes that only build the app, such as the tests' and the Lambda handler's).
 *
 * `--no-allocation-site-pretenuring`: under load V8 sometimes (at random, for the whole life of
 * the process; most Cluster-mode processes measured, some Sentinel-mode ones) starts allocating hot
 * per-request objects straight in the old generation; what they point to then survives scavenges and
 * the process runs 3-4x the major GCs: +40-70% CPU per cache-hit GET and PUT (issue 16's bench, GC
 * traces and heap profiles of identical processes side by side). Off, every process measured ran
 * normally, and PUT cost 5-10% less in Sentinel mode.
 */
export const RUNTIME_V8_FLAGS: readonly string[] = ['--no-allocation-site-pretenuring']

export function applyRuntimeV8Flags (): void {
  for (const flag of RUNTIME_V8_FLAGS) setFlagsFromString(flag)
}
