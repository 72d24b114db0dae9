/**
 * compose.yaml as compose reads it (YAML merge keys, `$$` and `${...}` interpolated with an empty
 * environment), for test/compose.test.ts and test/compose-cluster.test.ts: no Docker engine here.
 */
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'

/** The repository root relative to this file, whether it runs from test/helpers/ (tap) or dist/test/helpers/. */
const ROOT = new URL('../../', import.meta.url).href.endsWith('/dist/') ? '../../../' : '../../'

export interface Service {
  image?: string
  profiles?: string[]
  restart?: string
  build?: string | { context: string }
  command?: string[] | string
  entrypoint?: string[] | string
  environment?: Record<string, string | number | boolean | null> | string[]
  ports?: Array<string | { published: string | number; target: number; host_ip?: string }>
  healthcheck?: { test: string[] | string; interval?: string; timeout?: string; retries?: number }
  depends_on?: string[] | Record<string, { condition?: string }>
  secrets?: Array<string | { source: string; target?: string }>
  configs?: Array<string | { source: string; target?: string }>
  volumes?: Array<string | { type?: string; source?: string; target: string }>
}

export const text = readFileSync(new URL(`${ROOT}compose.yaml`, import.meta.url), 'utf8')
export const doc = parse(text, { merge: true }) as {
  services: Record<string, Service>
  secrets?: Record<string, { file?: string; environment?: string }>
  configs?: Record<string, { file?: string }>
  volumes?: Record<string, unknown>
}
export const services = doc.services
export const script = (name: string): string => readFileSync(new URL(`${ROOT}compose/${name}`, import.meta.url), 'utf8')

export const REDIS = ['redis-master', 'redis-replica-1', 'redis-replica-2']
export const SENTINELS = ['sentinel-1', 'sentinel-2', 'sentinel-3']
export const GATEWAYS = ['gateway-1', 'gateway-2']
/** The cluster profile (`docker compose --profile cluster up`). */
export const CLUSTER_NODES = [1, 2, 3, 4, 5, 6].map(i => `redis-cluster-${i}`)
export const CLUSTER_PROFILE = [...CLUSTER_NODES, 'redis-cluster-init', 'gateway-cluster']

/** `${NAME:-default}` / `${NAME}` / `$$` as compose interpolates them with an empty environment. */
export function interpolate (s: string): string {
  return s.replace(/\$\$|\$\{([A-Z_][A-Z0-9_]*)(?::?-([^}]*))?\}/g, (m, _name: string | undefined, def: string | undefined) => m === '$$' ? '$' : (def ?? ''))
}
export const env = (s: Service): Record<string, string> => {
  const e = s.environment ?? {}
  const pairs = Array.isArray(e) ? e.map(kv => kv.split('=', 2) as [string, string]) : Object.entries(e).map(([k, v]) => [k, v === null ? '' : String(v)] as [string, string])
  return Object.fromEntries(pairs.map(([k, v]) => [k, interpolate(v ?? '')]))
}
export const dependsOn = (s: Service): Record<string, string | undefined> => {
  const d = s.depends_on ?? {}
  return Array.isArray(d) ? Object.fromEntries(d.map(n => [n, undefined])) : Object.fromEntries(Object.entries(d).map(([k, v]) => [k, v.condition]))
}
export const secretsOf = (s: Service): string[] => (s.secrets ?? []).map(x => typeof x === 'string' ? x : x.source)
/** The named volume a service mounts at `target`. */
export const volumeAt = (s: Service, target: string): string | undefined => {
  for (const v of s.volumes ?? []) {
    if (typeof v === 'string') {
      const [source, tgt] = v.split(':')
      if (tgt === target) return source
    } else if (v.target === target) return v.source
  }
  return undefined
}
/** The script a service's entrypoint runs: `sh <target>` where a compose config of compose/<file> is mounted. */
export const entryScript = (s: Service): string | undefined => {
  const entry = Array.isArray(s.entrypoint) ? s.entrypoint : (s.entrypoint ?? '').split(/\s+/)
  if (entry[0] !== 'sh' || entry.length !== 2) return undefined
  const mounted = (s.configs ?? []).find(c => typeof c !== 'string' && c.target === entry[1])
  const file = typeof mounted === 'object' ? doc.configs?.[mounted.source]?.file : undefined
  return file?.replace(/^\.\/compose\//, '')
}
export const testOf = (name: string): string => {
  const h = services[name]?.healthcheck?.test
  return interpolate(Array.isArray(h) ? h.join(' ') : h ?? '')
}

