/** Parsers for the textual and flat-array answers of Redis and Sentinel. */

/** `SENTINEL MASTER` / `SENTINEL REPLICAS` entries come as flat [k1, v1, k2, v2, ...] arrays. */
export function flatToRecord (flat: unknown): Record<string, string> {
  const out: Record<string, string> = {}
  if (!Array.isArray(flat)) return out
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = String(flat[i + 1])
  return out
}

export interface ReplicationInfo {
  role: string
  masterReplOffset: number
  /** Replication history (src/sentinel/history.ts): current id, previous id and where it ends (+1). */
  replid: string
  replid2: string
  secondReplOffset: number
  /** Replicas attached to this master, as the master itself reports them. */
  replicas: Array<{ host: string; port: number; state: string; offset: number; lag: number }>
}

/** Parses the `INFO replication` section. */
export function parseReplicationInfo (text: string): ReplicationInfo {
  const fields: Record<string, string> = {}
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':')
    if (i > 0) fields[line.slice(0, i)] = line.slice(i + 1)
  }
  const replicas: ReplicationInfo['replicas'] = []
  for (const [k, v] of Object.entries(fields)) {
    if (!/^slave\d+$/.test(k)) continue
    const kv = Object.fromEntries(v.split(',').map(p => p.split('=') as [string, string]))
    replicas.push({
      host: kv.ip ?? '',
      port: Number(kv.port),
      state: kv.state ?? '',
      offset: Number(kv.offset ?? 0),
      lag: Number(kv.lag ?? 0)
    })
  }
  return {
    role: fields.role ?? 'unknown',
    masterReplOffset: Number(fields.master_repl_offset ?? 0),
    replid: fields.master_replid ?? '',
    replid2: fields.master_replid2 ?? '',
    secondReplOffset: Number(fields.second_repl_offset ?? -1),
    replicas
  }
}
