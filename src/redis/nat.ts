/**
 * Address translation (like ioredis `natMap`): sentinels report the addresses the nodes announce
 * inside their own network (e.g. `10.0.0.5:6379`), which the gateway may not reach; REDIS_NAT_MAP
 * says where to connect instead (e.g. `127.0.0.1:7001`).
 *
 * The announced address stays the node's identity everywhere (topology, breakers, metrics,
 * /topology): it is what the sentinels, the master's INFO replication and sentinel events all
 * name, so they keep matching. Only the moment a connection is opened (clientOptions) dials the
 * translated address.
 */
export interface Address { host: string; port: number }

/** Announced "host:port" → address to dial. */
export type NatMap = ReadonlyMap<string, Address>

export const EMPTY_NAT_MAP: NatMap = new Map()

const key = (a: Address): string => `${a.host}:${a.port}`

/** One `host:port` (IPv6 as `[::1]:6379`), or a reason. */
function parseAddress (raw: string): Address | string {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]=,]+)):(\d{1,5})$/.exec(raw)
  const host = m?.[1] ?? m?.[2]
  const port = Number(m?.[3])
  if (host === undefined || !(port >= 1 && port <= 65_535)) return `"${raw}" is not host:port`
  return { host, port }
}

/**
 * Parses `from=to,from=to` where both sides are host:port, e.g.
 * `10.0.0.5:6379=127.0.0.1:7001,10.0.0.6:6379=127.0.0.1:7002`. Returns a reason on error.
 */
export function parseNatMap (value: string): NatMap | string {
  const out = new Map<string, Address>()
  for (const entry of value.split(',').map(s => s.trim()).filter(Boolean)) {
    const parts = entry.split('=').map(s => s.trim())
    if (parts.length !== 2) return `"${entry}" is not announced-host:port=reachable-host:port`
    const from = parseAddress(parts[0]!)
    if (typeof from === 'string') return from
    const to = parseAddress(parts[1]!)
    if (typeof to === 'string') return to
    if (out.has(key(from))) return `${key(from)} is mapped twice`
    out.set(key(from), to)
  }
  if (out.size === 0) return 'expected at least one announced-host:port=reachable-host:port'
  return out
}

/** Where to connect for a node the sentinels report at `addr` (itself when not mapped). */
export function translate (map: NatMap | undefined, addr: Address): Address {
  const to = map?.get(key(addr))
  return to === undefined ? { host: addr.host, port: addr.port } : { host: to.host, port: to.port }
}

/** ioredis `natMap` option (function form) for a sentinel-mode client, or undefined when empty. */
export function ioredisNatMap (map: NatMap | undefined): ((k: string) => Address | null) | undefined {
  if (map === undefined || map.size === 0) return undefined
  return (k: string) => {
    const to = map.get(k)
    return to === undefined ? null : { host: to.host, port: to.port }
  }
}
