/**
 * Configuration: environment variables only, parsed and validated once.
 *
 * Each variable is described once in `VARIABLES` below; the README table is generated from it
 * (`node dist/scripts/config-table.js`) and a test checks that they agree.
 */
import { isIP } from 'node:net'
import { getHeapStatistics } from 'node:v8'
import { availableCores } from './cores.js'
import { EMPTY_NAT_MAP, parseNatMap, type NatMap } from './redis/nat.js'
import { readPemFile, type TlsSettings, type TlsVariableNames } from './redis/tls.js'
import { secretFromEnvOrFile } from './secret-file.js'

export type ReadStrategy = 'round-robin' | 'random' | 'least-latency'
export type Durability = 'replicated' | 'all' | 'none'
export interface HostPort { host: string; port: number }

/** Thrown for a bad environment value; `message` is the one line printed before exit. */
export class ConfigError extends Error {
  readonly code = 'GW_ERR_CONFIG_INVALID'
}

type Kind =
  | { type: 'string' }
  | { type: 'secret' }
  | { type: 'int'; min: number; max: number }
  | { type: 'enum'; values: readonly string[] }
  | { type: 'sentinels' }
  | { type: 'natmap' }
  /** An integer in 1..max, or `auto`: the cores available to the process (src/cores.ts). */
  | { type: 'cores'; max: number }

interface Variable { env: string; kind: Kind; default?: string; doc: string; required?: boolean }

const int = (min: number, max: number): Kind => ({ type: 'int', min, max })
const bool: Kind = { type: 'enum', values: ['true', 'false'] }
const MAX_INT = 2 ** 31 - 1

/** The one table of every variable: name, type, default and what it does. */
export const VARIABLES = [
  { env: 'REDIS_SENTINELS', kind: { type: 'sentinels' }, doc: 'Comma-separated sentinel addresses `host:port,host:port,...` (use 3 or more, an odd number). The master and replicas are discovered through them. Set exactly one of REDIS_SENTINELS and REDIS_CLUSTER_NODES.' },
  { env: 'REDIS_CLUSTER_NODES', kind: { type: 'sentinels' }, doc: 'Redis Cluster mode instead of Sentinel: comma-separated seed nodes `host:port,host:port,...` (a few masters and replicas; the rest is discovered with CLUSTER NODES). Set exactly one of REDIS_SENTINELS and REDIS_CLUSTER_NODES. See the README\'s Cluster section for what is supported.' },
  { env: 'REDIS_MASTER_NAME', kind: { type: 'string' }, default: 'mymaster', doc: 'Name of the master set monitored by the sentinels.' },
  { env: 'REDIS_USERNAME', kind: { type: 'string' }, doc: 'ACL username for the Redis nodes (optional).' },
  { env: 'REDIS_PASSWORD', kind: { type: 'secret' }, doc: 'Password for the Redis nodes (never logged or shown).' },
  { env: 'REDIS_PASSWORD_FILE', kind: { type: 'string' }, doc: 'Path of a file holding REDIS_PASSWORD (one line; a trailing newline is dropped), read once at start: a Docker or Kubernetes secret, kept off the environment. Set REDIS_PASSWORD or this, not both.' },
  { env: 'REDIS_CONTROL_USERNAME', kind: { type: 'string' }, doc: 'ACL username of the gateway\'s control connections (ROLE, INFO, WAIT, CLIENT TRACKING, SCRIPT KILL, COMMAND); the connections that run client commands use REDIS_USERNAME, a user Redis ACL keeps away from `@admin`/`@dangerous` commands and reserved channels (see the README\'s security section). Unset: REDIS_USERNAME for both, and a warning at start.' },
  { env: 'REDIS_CONTROL_PASSWORD', kind: { type: 'secret' }, doc: 'Password of REDIS_CONTROL_USERNAME (never logged or shown).' },
  { env: 'REDIS_CONTROL_PASSWORD_FILE', kind: { type: 'string' }, doc: 'Path of a file holding REDIS_CONTROL_PASSWORD, read once at start (like REDIS_PASSWORD_FILE).' },
  { env: 'REDIS_SENTINEL_USERNAME', kind: { type: 'string' }, doc: 'ACL username for the sentinels (optional).' },
  { env: 'REDIS_SENTINEL_PASSWORD', kind: { type: 'secret' }, doc: 'Password for the sentinels (never logged or shown).' },
  { env: 'REDIS_SENTINEL_PASSWORD_FILE', kind: { type: 'string' }, doc: 'Path of a file holding REDIS_SENTINEL_PASSWORD, read once at start (like REDIS_PASSWORD_FILE).' },
  { env: 'REDIS_TLS', kind: bool, default: 'false', doc: 'Connect to the Redis nodes over TLS (`true`/`false`). Each server certificate is verified against the CA and against the host of the node actually connected to (as the sentinels report it, after REDIS_NAT_MAP).' },
  { env: 'REDIS_TLS_CA_FILE', kind: { type: 'string' }, doc: 'PEM CA bundle that signed the nodes\' certificates (read once at start). Unset: Node\'s default public CAs.' },
  { env: 'REDIS_TLS_CERT_FILE', kind: { type: 'string' }, doc: 'PEM client certificate for the nodes, for servers with `tls-auth-clients yes` (needs REDIS_TLS_KEY_FILE).' },
  { env: 'REDIS_TLS_KEY_FILE', kind: { type: 'string' }, doc: 'PEM private key of REDIS_TLS_CERT_FILE (never logged).' },
  { env: 'REDIS_TLS_SERVERNAME', kind: { type: 'string' }, doc: 'Name to check every node certificate against (and send as SNI) instead of each node\'s own host. Only for nodes announced by address that share one certificate naming a host name.' },
  { env: 'REDIS_SENTINEL_TLS', kind: bool, default: 'false', doc: 'Connect to the sentinels over TLS (`true`/`false`), independently of REDIS_TLS.' },
  { env: 'REDIS_SENTINEL_TLS_CA_FILE', kind: { type: 'string' }, doc: 'PEM CA bundle for the sentinels\' certificates. Unset: REDIS_TLS_CA_FILE if set, else Node\'s default CAs.' },
  { env: 'REDIS_SENTINEL_TLS_CERT_FILE', kind: { type: 'string' }, doc: 'PEM client certificate for the sentinels. Unset: REDIS_TLS_CERT_FILE if set.' },
  { env: 'REDIS_SENTINEL_TLS_KEY_FILE', kind: { type: 'string' }, doc: 'PEM private key of the sentinel client certificate. Unset: REDIS_TLS_KEY_FILE if set.' },
  { env: 'REDIS_SENTINEL_TLS_SERVERNAME', kind: { type: 'string' }, doc: 'Name to check every sentinel certificate against instead of the host given in REDIS_SENTINELS (e.g. sentinels listed by IP with a certificate for `sentinel.internal`). Never applied to the nodes.' },
  { env: 'REDIS_NAT_MAP', kind: { type: 'natmap' }, doc: 'Address translation for nodes that announce addresses the gateway cannot reach, `announced-host:port=reachable-host:port,...` (like ioredis `natMap`), e.g. `10.0.0.5:6379=127.0.0.1:7001`. Applied to every master and replica address the sentinels report, when connecting; /topology, logs and metrics keep showing the announced address.' },
  { env: 'REDIS_DB', kind: int(0, 15), default: '0', doc: 'Logical database number.' },
  { env: 'REDIS_READ_STRATEGY', kind: { type: 'enum', values: ['round-robin', 'random', 'least-latency'] }, default: 'round-robin', doc: 'How reads are spread over healthy replicas.' },
  { env: 'REDIS_CONNECT_TIMEOUT_MS', kind: int(50, 60_000), default: '2000', doc: 'Timeout to open a connection to a node or sentinel.' },
  { env: 'REDIS_COMMAND_TIMEOUT_MS', kind: int(10, 60_000), default: '1000', doc: 'Timeout of one Redis call (a node that takes longer counts as failing).' },
  { env: 'REDIS_POOL_SIZE', kind: int(1, 64), default: '2', doc: 'Connections per Redis node for /kv reads and writes, and as many again for the command endpoint (opened on first use); each node also has one control connection.' },
  { env: 'REDIS_REFRESH_INTERVAL_MS', kind: int(100, 60_000), default: '1000', doc: 'Periodic topology refresh through the sentinels (safety net besides sentinel events); also how often replica lag is read.' },
  { env: 'REDIS_WAIT_TIMEOUT_MS', kind: int(10, 60_000), default: '500', doc: 'How long one write attempt waits (`WAIT`) for the replicas to confirm it; a write held (failover, replica not attached) is sent only while this much of its budget is left (at most half of it), else 503.' },
  { env: 'WRITE_DURABILITY', kind: { type: 'enum', values: ['replicated', 'all', 'none'] }, default: 'replicated', doc: 'Default write acknowledgement: `replicated` (on the master and every replica that could be promoted: listed by the sentinels and not flagged down), `all` (on every data node the sentinels list, down or not: writes wait, then 503/504, while any is down) or `none` (master only; may be lost in a failover). Per request: `?durability=`.' },
  { env: 'REQUEST_RETRY_BUDGET_MS', kind: int(0, 120_000), default: '5000', doc: 'Total time a request may spend retrying a failing Redis call (exponential backoff, full jitter) before it answers 503/504.' },
  { env: 'RETRY_BASE_DELAY_MS', kind: int(1, 10_000), default: '25', doc: 'First retry delay ceiling; doubles each try.' },
  { env: 'RETRY_MAX_DELAY_MS', kind: int(1, 60_000), default: '500', doc: 'Largest retry delay ceiling.' },
  { env: 'REPLICA_MAX_LAG_BYTES', kind: int(0, MAX_INT), default: '1048576', doc: 'A replica further behind the master than this (replication offset bytes) gets no reads; 0 disables the check.' },
  { env: 'BREAKER_ERROR_THRESHOLD_PERCENT', kind: int(1, 100), default: '50', doc: 'Circuit breaker (per node): failure percentage in the rolling window that opens it.' },
  { env: 'BREAKER_VOLUME_THRESHOLD', kind: int(1, 10_000), default: '5', doc: 'Circuit breaker: minimum calls in the window before it may open.' },
  { env: 'BREAKER_RESET_TIMEOUT_MS', kind: int(100, 600_000), default: '5000', doc: 'Circuit breaker: time open before one trial call (half-open).' },
  { env: 'BREAKER_ROLLING_WINDOW_MS', kind: int(100, 600_000), default: '10000', doc: 'Circuit breaker: length of the rolling statistics window.' },
  { env: 'KV_MAX_KEY_BYTES', kind: int(1, 65_536), default: '1024', doc: 'Longest key, in bytes after URL decoding.' },
  { env: 'KV_MAX_VALUE_BYTES', kind: int(1, 512 * 1024 * 1024), default: '1048576', doc: 'Largest value (request body) in bytes; larger gets 413.' },
  { env: 'AUTH_TOKENS', kind: { type: 'secret' }, doc: 'Bearer tokens, comma-separated `token:rights[:prefix]`; rights are letters: `r` read, `w` write, `x` scripts (never with a prefix), `p` publish/subscribe, `o` operations (/topology, /metrics, the /ui page\'s feed), e.g. `t0k3n:rwo,r3ad:r,s3ss:rw:session:`. Unset (and no file): the gateway runs open (`r` and `w` only) and says so at start.' },
  { env: 'AUTH_TOKENS_FILE', kind: { type: 'string' }, doc: 'Path of a JSON file `[{"name":"web","token":"...","rights":["read","write"],"prefix":"session:"}]` (rights: `read`, `write`, `script`, `pubsub`, `ops`), read at start (adds to AUTH_TOKENS). The name is what logs and rate-limit counters show.' },
  { env: 'AUTH_FAILURES_MAX', kind: int(0, MAX_INT), default: '30', doc: 'Answers 401 allowed per client address per AUTH_FAILURES_WINDOW_MS; past it the address gets 429 until the window ends (counted in each process). 0 disables.' },
  { env: 'AUTH_FAILURES_WINDOW_MS', kind: int(100, 86_400_000), default: '60000', doc: 'Window of AUTH_FAILURES_MAX.' },
  { env: 'TRUST_PROXY', kind: { type: 'string' }, default: '', doc: 'When `X-Forwarded-For` names the client (rate limits, 401 limits, logs): empty (never), a number of proxy hops (e.g. `1`), or comma-separated addresses/CIDRs of trusted proxies (e.g. `10.0.0.0/8,127.0.0.1`).' },
  { env: 'CORS_ORIGINS', kind: { type: 'string' }, default: '', doc: 'Origins browsers may call from, comma-separated (e.g. `https://app.example.com`), or `*`. Empty: no CORS headers (browsers on other origins are blocked).' },
  { env: 'RATE_LIMIT_MAX', kind: int(0, MAX_INT), default: '0', doc: 'Requests per window per token (per client IP when anonymous); 0 disables rate limiting. Counters live on the Redis master, shared by every gateway process.' },
  { env: 'RATE_LIMIT_WINDOW_MS', kind: int(100, 86_400_000), default: '60000', doc: 'Rate limit window.' },
  { env: 'NEAR_CACHE', kind: bool, default: 'true', doc: 'In-process cache of replica reads (`true`/`false`), kept correct by Redis server-assisted invalidation (`CLIENT TRACKING`): flushed whole whenever an invalidation could be missed (connection drop, missed 100 ms heartbeat, failover or replica change). Strong and sync-token reads and all writes bypass it. Keys with a TTL are not cached.' },
  { env: 'NEAR_CACHE_MAX_BYTES', kind: int(1024, 4 * 1024 * 1024 * 1024), default: '33554432', doc: 'Memory bound of the near-cache (keys, values and per-entry overhead), least recently used evicted first.' },
  { env: 'NEAR_CACHE_MAX_VALUE_BYTES', kind: int(0, 512 * 1024 * 1024), default: '65536', doc: 'Values larger than this are not cached.' },
  { env: 'BATCH_MAX_OPS', kind: int(1, 10_000), default: '100', doc: 'Most operations in one `POST /kv/_batch`.' },
  { env: 'UPSTASH_DENY_COMMANDS', kind: { type: 'string' }, default: '', doc: 'More Redis commands the Upstash-compatible endpoint refuses, comma-separated: a command or one subcommand (e.g. `HGETALL,OBJECT|FREQ`). It can only remove: what the allowlist refuses (see the README\'s security section) stays refused.' },
  { env: 'UPSTASH_MAX_COMMANDS', kind: int(1, 100_000), default: '1000', doc: 'Most commands in one Upstash `POST /pipeline` or `POST /multi-exec`.' },
  { env: 'UPSTASH_MAX_REPLY_BYTES', kind: int(1024, 512 * 1024 * 1024), default: '16777216', doc: 'Largest Redis reply the Upstash endpoint passes on; a larger one answers an error (its connection is closed while it arrives, so it never fills memory).' },
  { env: 'UPSTASH_MAX_REPLY_DEPTH', kind: int(2, 1000), default: '32', doc: 'Deepest nesting of a Redis reply (arrays in arrays, e.g. returned by a script) the Upstash endpoint passes on; a deeper one answers an error.' },
  { env: 'PUBSUB_MAX_STREAMS_PER_TOKEN', kind: int(1, 1_000_000), default: '100', doc: 'Most subscription streams (`/subscribe`, `/psubscribe`, `/ssubscribe`) one token may hold open in one gateway process; one more answers 429.' },
  { env: 'PUBSUB_MAX_STREAMS', kind: int(1, 1_000_000), default: '10000', doc: 'Most subscription streams open in one gateway process, all tokens together; one more answers 503 with Retry-After.' },
  { env: 'PUBSUB_HEARTBEAT_MS', kind: int(100, 600_000), default: '15000', doc: 'Interval of the heartbeat comment (`: ping`) on every subscription stream, so proxies do not close idle streams.' },
  { env: 'PUBSUB_MAX_BUFFERED_BYTES', kind: int(1024, 512 * 1024 * 1024), default: '1048576', doc: 'Most bytes of one subscription stream written and not yet read by its client; a client that falls further behind is disconnected (its messages are never buffered past this).' },
  { env: 'REQUEST_TIMEOUT_MS', kind: int(0, 600_000), default: '30000', doc: 'Node HTTP server request timeout (whole request received within this); 0 disables.' },
  { env: 'EVENT_LOOP_MAX_DELAY_MS', kind: int(0, 60_000), default: '1000', doc: 'Load shedding: while the event loop lags more than this, requests get 503 with Retry-After instead of queueing, and /readyz answers 503. 0 disables.' },
  { env: 'SHUTDOWN_TIMEOUT_MS', kind: int(100, 600_000), default: '10000', doc: 'On SIGTERM/SIGINT: longest wait for in-flight requests before the process exits anyway (exit code 1).' },
  { env: 'HOST', kind: { type: 'string' }, default: '0.0.0.0', doc: 'Address the HTTP server listens on.' },
  { env: 'PORT', kind: int(0, 65_535), default: '3000', doc: 'Port the HTTP server listens on.' },
  { env: 'WORKERS', kind: { type: 'cores', max: 64 }, default: '1', doc: 'Gateway processes sharing PORT (node:cluster). 1: a single process. N > 1: a primary that forks N workers, each a full gateway with its own Redis connections and near-cache, restarts a worker that dies, and forwards SIGTERM/SIGINT to all of them. At most the number of cores the gateway has to itself. `auto`: that number, the CPUs the process may run on capped by its container CPU quota (cgroup `cpu.max`, rounded down, at least 1); where the gateway has the cores, the setting that serves the most requests.' },
  { env: 'LOG_LEVEL', kind: { type: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] }, default: 'info', doc: 'pino log level (one JSON line per request at `info`).' }
] as const satisfies readonly Variable[]

export interface Config {
  /** REDIS_SENTINELS (empty in Cluster mode). */
  sentinels: HostPort[]
  /** REDIS_CLUSTER_NODES: Cluster mode (src/cluster/) when set. */
  clusterNodes?: HostPort[]
  masterName: string
  redisUsername?: string
  redisPassword?: string
  /** Credentials of the control connections (REDIS_CONTROL_*); unset: the data credentials. */
  controlUsername?: string
  controlPassword?: string
  sentinelUsername?: string
  sentinelPassword?: string
  /** TLS to the nodes (REDIS_TLS=true), files already read. */
  redisTls?: TlsSettings
  /** TLS to the sentinels (REDIS_SENTINEL_TLS=true), files already read. */
  sentinelTls?: TlsSettings
  /** Announced node address → address to connect to (empty: none). */
  natMap: NatMap
  db: number
  readStrategy: ReadStrategy
  connectTimeoutMs: number
  commandTimeoutMs: number
  poolSize: number
  refreshIntervalMs: number
  waitTimeoutMs: number
  durability: Durability
  retryBudgetMs: number
  retryBaseDelayMs: number
  retryMaxDelayMs: number
  replicaMaxLagBytes: number
  breaker: { errorThresholdPercentage: number; volumeThreshold: number; resetTimeout: number; rollingCountTimeout: number }
  maxKeyBytes: number
  maxValueBytes: number
  authTokens?: string
  authTokensFile?: string
  /** 401 answers per client address and window (0: unlimited). */
  authFailures: { max: number; windowMs: number }
  /** TRUST_PROXY as Fastify's trustProxy option: false, a hop count, or addresses/CIDRs. */
  trustProxy: false | number | string[]
  corsOrigins: string[]
  rateLimit: { max: number; windowMs: number }
  batchMaxOps: number
  /** Near-cache of replica reads (NEAR_CACHE); undefined when off. */
  nearCache?: { maxBytes: number; maxValueBytes: number }
  /** Lower-case Redis command names the Upstash endpoint refuses (UPSTASH_DENY_COMMANDS). */
  upstashDenyCommands: string[]
  upstashMaxCommands: number
  upstashMaxReplyBytes: number
  upstashMaxReplyDepth: number
  /** Subscription streams (PUBSUB_*). */
  pubsub: { maxStreamsPerToken: number; maxStreams: number; heartbeatMs: number; maxBufferedBytes: number }
  requestTimeoutMs: number
  eventLoopMaxDelayMs: number
  shutdownTimeoutMs: number
  host: string
  port: number
  /** Processes serving PORT (WORKERS): 1 = no cluster. */
  workers: number
  logLevel: string
  /** Non-fatal remarks found while parsing (e.g. an even number of sentinels). */
  warnings: string[]
}

/** Parses `host:port,host:port` (IPv6 as `[::1]:26379`). */
export function parseHostPorts (value: string): HostPort[] | string {
  const out: HostPort[] = []
  for (const raw of value.split(',').map(s => s.trim()).filter(Boolean)) {
    const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(raw)
    const host = m?.[1] ?? m?.[2]
    const port = Number(m?.[3])
    if (host === undefined || !(port >= 1 && port <= 65_535)) return `"${raw}" is not host:port`
    if (m?.[1] !== undefined && isIP(host) !== 6) return `"${raw}" is not a valid [IPv6]:port`
    out.push({ host, port })
  }
  if (out.length === 0) return 'expected at least one host:port'
  return out
}

function parseOne (v: Variable, raw: string): unknown {
  const bad = (why: string): never => {
    const shown = v.kind.type === 'secret' ? '' : ` (got "${raw}")`
    throw new ConfigError(`Invalid environment variable ${v.env}: ${why}${shown}`)
  }
  switch (v.kind.type) {
    case 'string': case 'secret':
      return raw
    case 'int': {
      if (!/^\d+$/.test(raw.trim())) bad(`must be an integer between ${v.kind.min} and ${v.kind.max}`)
      const n = Number(raw)
      if (n < v.kind.min || n > v.kind.max) bad(`must be an integer between ${v.kind.min} and ${v.kind.max}`)
      return n
    }
    case 'enum':
      if (!v.kind.values.includes(raw)) bad(`must be one of ${v.kind.values.join(', ')}`)
      return raw
    case 'sentinels': {
      const r = parseHostPorts(raw)
      if (typeof r === 'string') bad(`${r}; expected host:port,host:port,...`)
      return r
    }
    case 'cores': {
      const value = raw.trim()
      if (value === 'auto') return Math.min(v.kind.max, availableCores())
      if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > v.kind.max) bad(`must be auto or an integer between 1 and ${v.kind.max}`)
      return Number(value)
    }
    case 'natmap': {
      const r = parseNatMap(raw)
      if (typeof r === 'string') bad(`${r}; expected announced-host:port=reachable-host:port,...`)
      return r
    }
  }
}

const NODE_TLS: TlsVariableNames = { enabled: 'REDIS_TLS', ca: 'REDIS_TLS_CA_FILE', cert: 'REDIS_TLS_CERT_FILE', key: 'REDIS_TLS_KEY_FILE', servername: 'REDIS_TLS_SERVERNAME' }
const SENTINEL_TLS: TlsVariableNames = { enabled: 'REDIS_SENTINEL_TLS', ca: 'REDIS_SENTINEL_TLS_CA_FILE', cert: 'REDIS_SENTINEL_TLS_CERT_FILE', key: 'REDIS_SENTINEL_TLS_KEY_FILE', servername: 'REDIS_SENTINEL_TLS_SERVERNAME' }

/**
 * The TLS settings of one side, files read now, or undefined when its *_TLS is not `true`
 * (files named anyway only earn a warning). `fallback`: variables used for a file left unset
 * (the sentinels fall back to the nodes' files).
 */
function tlsSettings (v: Record<string, unknown>, names: TlsVariableNames, warnings: string[], fallback?: TlsVariableNames): TlsSettings | undefined {
  const pick = (field: 'ca' | 'cert' | 'key'): { variable: string; file: string } | undefined => {
    for (const n of fallback === undefined ? [names] : [names, fallback]) {
      const file = v[n[field]] as string | undefined
      if (file !== undefined) return { variable: n[field], file }
    }
    return undefined
  }
  if (v[names.enabled] !== 'true') {
    const ignored = [names.ca, names.cert, names.key, names.servername].filter(n => v[n] !== undefined)
    if (ignored.length > 0) warnings.push(`${ignored.join(', ')} ignored: ${names.enabled} is not true`)
    return undefined
  }
  const read = (field: 'ca' | 'cert' | 'key'): Buffer | undefined => {
    const f = pick(field)
    if (f === undefined) return undefined
    const r = readPemFile(f.variable, f.file)
    if (typeof r === 'string') throw new ConfigError(r)
    return r
  }
  const cert = pick('cert')
  const key = pick('key')
  if ((cert === undefined) !== (key === undefined)) {
    throw new ConfigError(`Invalid environment variable ${cert === undefined ? names.cert : names.key}: a client certificate needs both ${names.cert} and ${names.key}`)
  }
  const servername = v[names.servername] as string | undefined
  const out: TlsSettings = {}
  const ca = read('ca')
  if (ca !== undefined) out.ca = ca
  const certPem = read('cert')
  if (certPem !== undefined) out.cert = certPem
  const keyPem = read('key')
  if (keyPem !== undefined) out.key = keyPem
  if (servername !== undefined) out.servername = servername
  return out
}

/** A password from its variable or from the file its `_FILE` variable names (src/secret-file.ts). */
function secret (v: Record<string, unknown>, name: 'REDIS_PASSWORD' | 'REDIS_CONTROL_PASSWORD' | 'REDIS_SENTINEL_PASSWORD'): string | undefined {
  const r = secretFromEnvOrFile(name, v[name] as string | undefined, v[`${name}_FILE`] as string | undefined)
  if (typeof r === 'string') throw new ConfigError(r)
  return r.value
}

/**
 * Reads every variable from `env`, applying defaults. Throws ConfigError (one line naming the
 * variable and what is wrong) on the first bad or missing value.
 */
export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  const v: Record<string, unknown> = {}
  for (const variable of VARIABLES as readonly Variable[]) {
    const raw = env[variable.env]
    if (raw === undefined || raw === '') {
      if (variable.required) {
        throw new ConfigError(`Missing environment variable ${variable.env}: ${variable.doc.split(/\.\s/)[0]}`)
      }
      if (variable.default !== undefined) v[variable.env] = parseOne(variable, variable.default)
      continue
    }
    v[variable.env] = parseOne(variable, raw)
  }
  const sentinels = (v.REDIS_SENTINELS as HostPort[] | undefined) ?? []
  const clusterNodes = v.REDIS_CLUSTER_NODES as HostPort[] | undefined
  if ((v.REDIS_SENTINELS === undefined) === (clusterNodes === undefined)) {
    throw new ConfigError(clusterNodes === undefined
      ? 'Missing environment variable REDIS_SENTINELS: set REDIS_SENTINELS (sentinel addresses host:port,...) for a Sentinel deployment, or REDIS_CLUSTER_NODES (seed nodes host:port,...) for Redis Cluster'
      : 'Invalid environment variables REDIS_SENTINELS and REDIS_CLUSTER_NODES: set one of them, not both (Sentinel mode or Cluster mode)')
  }
  if (clusterNodes !== undefined && v.REDIS_DB !== 0) {
    throw new ConfigError('Invalid environment variable REDIS_DB: Redis Cluster has only database 0 (REDIS_CLUSTER_NODES is set)')
  }
  const warnings: string[] = []
  if (clusterNodes === undefined && (sentinels.length < 3 || sentinels.length % 2 === 0)) {
    warnings.push(`REDIS_SENTINELS lists ${sentinels.length} sentinel(s): use 3 or more, an odd number, so a majority can always agree on the master`)
  }
  if ((v.RETRY_BASE_DELAY_MS as number) > (v.RETRY_MAX_DELAY_MS as number)) {
    throw new ConfigError('Invalid environment variable RETRY_BASE_DELAY_MS: must not exceed RETRY_MAX_DELAY_MS')
  }
  const heapLimit = getHeapStatistics().heap_size_limit
  if (v.NEAR_CACHE === 'true' && (v.NEAR_CACHE_MAX_BYTES as number) > heapLimit / 4) {
    warnings.push(`NEAR_CACHE_MAX_BYTES (${v.NEAR_CACHE_MAX_BYTES as number}) is more than a quarter of this process's heap limit (${Math.round(heapLimit / 1048576)} MB): lower it, or raise --max-old-space-size in NODE_OPTIONS`)
  }
  const redisTls = tlsSettings(v, NODE_TLS, warnings)
  const sentinelTls = tlsSettings(v, SENTINEL_TLS, warnings, NODE_TLS)
  return {
    sentinels,
    ...(clusterNodes !== undefined ? { clusterNodes } : {}),
    masterName: v.REDIS_MASTER_NAME as string,
    redisUsername: v.REDIS_USERNAME as string | undefined,
    redisPassword: secret(v, 'REDIS_PASSWORD'),
    controlUsername: v.REDIS_CONTROL_USERNAME as string | undefined,
    controlPassword: secret(v, 'REDIS_CONTROL_PASSWORD'),
    sentinelUsername: v.REDIS_SENTINEL_USERNAME as string | undefined,
    sentinelPassword: secret(v, 'REDIS_SENTINEL_PASSWORD'),
    ...(redisTls !== undefined ? { redisTls } : {}),
    ...(sentinelTls !== undefined ? { sentinelTls } : {}),
    natMap: (v.REDIS_NAT_MAP as NatMap | undefined) ?? EMPTY_NAT_MAP,
    db: v.REDIS_DB as number,
    readStrategy: v.REDIS_READ_STRATEGY as ReadStrategy,
    connectTimeoutMs: v.REDIS_CONNECT_TIMEOUT_MS as number,
    commandTimeoutMs: v.REDIS_COMMAND_TIMEOUT_MS as number,
    poolSize: v.REDIS_POOL_SIZE as number,
    refreshIntervalMs: v.REDIS_REFRESH_INTERVAL_MS as number,
    waitTimeoutMs: v.REDIS_WAIT_TIMEOUT_MS as number,
    durability: v.WRITE_DURABILITY as Durability,
    retryBudgetMs: v.REQUEST_RETRY_BUDGET_MS as number,
    retryBaseDelayMs: v.RETRY_BASE_DELAY_MS as number,
    retryMaxDelayMs: v.RETRY_MAX_DELAY_MS as number,
    replicaMaxLagBytes: v.REPLICA_MAX_LAG_BYTES as number,
    breaker: {
      errorThresholdPercentage: v.BREAKER_ERROR_THRESHOLD_PERCENT as number,
      volumeThreshold: v.BREAKER_VOLUME_THRESHOLD as number,
      resetTimeout: v.BREAKER_RESET_TIMEOUT_MS as number,
      rollingCountTimeout: v.BREAKER_ROLLING_WINDOW_MS as number
    },
    maxKeyBytes: v.KV_MAX_KEY_BYTES as number,
    maxValueBytes: v.KV_MAX_VALUE_BYTES as number,
    authTokens: v.AUTH_TOKENS as string | undefined,
    authTokensFile: v.AUTH_TOKENS_FILE as string | undefined,
    authFailures: { max: v.AUTH_FAILURES_MAX as number, windowMs: v.AUTH_FAILURES_WINDOW_MS as number },
    trustProxy: parseTrustProxy(v.TRUST_PROXY as string),
    corsOrigins: (v.CORS_ORIGINS as string).split(',').map(o => o.trim()).filter(Boolean),
    rateLimit: { max: v.RATE_LIMIT_MAX as number, windowMs: v.RATE_LIMIT_WINDOW_MS as number },
    batchMaxOps: v.BATCH_MAX_OPS as number,
    ...(v.NEAR_CACHE === 'true' ? { nearCache: { maxBytes: v.NEAR_CACHE_MAX_BYTES as number, maxValueBytes: v.NEAR_CACHE_MAX_VALUE_BYTES as number } } : {}),
    upstashDenyCommands: parseCommandList('UPSTASH_DENY_COMMANDS', v.UPSTASH_DENY_COMMANDS as string),
    upstashMaxCommands: v.UPSTASH_MAX_COMMANDS as number,
    upstashMaxReplyBytes: v.UPSTASH_MAX_REPLY_BYTES as number,
    upstashMaxReplyDepth: v.UPSTASH_MAX_REPLY_DEPTH as number,
    pubsub: {
      maxStreamsPerToken: v.PUBSUB_MAX_STREAMS_PER_TOKEN as number,
      maxStreams: v.PUBSUB_MAX_STREAMS as number,
      heartbeatMs: v.PUBSUB_HEARTBEAT_MS as number,
      maxBufferedBytes: v.PUBSUB_MAX_BUFFERED_BYTES as number
    },
    requestTimeoutMs: v.REQUEST_TIMEOUT_MS as number,
    eventLoopMaxDelayMs: v.EVENT_LOOP_MAX_DELAY_MS as number,
    shutdownTimeoutMs: v.SHUTDOWN_TIMEOUT_MS as number,
    host: v.HOST as string,
    port: v.PORT as number,
    workers: v.WORKERS as number,
    logLevel: v.LOG_LEVEL as string,
    warnings
  }
}

/**
 * `GET,set, Hgetall` -> ['get', 'set', 'hgetall']; `none` -> []. Names are only checked for their
 * shape: what a command is, the server's own command table says (a newer server has more).
 */
export function parseCommandList (env: string, raw: string): string[] {
  const names = raw.split(',').map(s => s.trim().toLowerCase()).filter(Boolean)
  if (names.length === 1 && names[0] === 'none') return []
  for (const name of names) {
    if (!/^[a-z][a-z0-9_.-]{0,63}(\|[a-z][a-z0-9_.-]{0,63})?$/.test(name)) throw new ConfigError(`Invalid environment variable ${env}: "${name}" is not a command name (or use none)`)
  }
  return [...new Set(names)]
}

/** TRUST_PROXY: '' -> false; `2` -> 2 hops; `10.0.0.0/8, 127.0.0.1` -> addresses and CIDRs. */
export function parseTrustProxy (raw: string): false | number | string[] {
  const value = raw.trim()
  if (value === '' || value === 'false') return false
  if (/^\d+$/.test(value)) {
    const hops = Number(value)
    if (hops < 1 || hops > 32) throw new ConfigError(`Invalid environment variable TRUST_PROXY: a hop count must be between 1 and 32 (got "${raw}")`)
    return hops
  }
  const list = value.split(',').map(s => s.trim()).filter(Boolean)
  for (const item of list) {
    const [addr, bits, extra] = item.split('/')
    const family = isIP(addr ?? '')
    const maxBits = family === 6 ? 128 : 32
    if (family === 0 || extra !== undefined || (bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) <= maxBits))) {
      throw new ConfigError(`Invalid environment variable TRUST_PROXY: "${item}" is not an address or CIDR; expected a hop count or addresses/CIDRs`)
    }
  }
  return list
}

/** The README configuration table, generated from VARIABLES. */
export function configTableMarkdown (): string {
  const rows = (VARIABLES as readonly Variable[]).map(v => {
    const def = v.required ? '**required**' : v.default !== undefined ? `\`${v.default}\`` : '(unset)'
    return `| \`${v.env}\` | ${def} | ${v.doc} |`
  })
  return ['| Variable | Default | Meaning |', '| --- | --- | --- |', ...rows].join('\n')
}
