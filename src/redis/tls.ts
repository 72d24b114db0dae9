/**
 * TLS to the Redis nodes and to the sentinels: certificate files read once at start, and the
 * per-connection `tls` options of ioredis.
 *
 * The name a server certificate is checked against is the host of the node actually being
 * connected to (after address translation), never one fixed name for every node: in sentinel
 * mode ioredis copies one `tls` object onto every node it connects to, so a `servername` in it
 * would be checked against every master and replica (ioredis issues #1459, #1832). Only an
 * explicit *_TLS_SERVERNAME overrides it.
 */
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import type { ConnectionOptions } from 'node:tls'

/** What one side (nodes or sentinels) uses for TLS. Key material is never logged. */
export interface TlsSettings {
  /** PEM CA bundle to verify servers with; undefined: Node's default CAs. */
  ca?: Buffer
  /** PEM client certificate and key, for servers that ask for one (`tls-auth-clients yes`). */
  cert?: Buffer
  key?: Buffer
  /** Name every server certificate of this side is checked against (and sent as SNI) instead of each server's own host. */
  servername?: string
}

/** The env variables of one side, e.g. { enabled: 'REDIS_TLS', ca: 'REDIS_TLS_CA_FILE', ... }. */
export interface TlsVariableNames { enabled: string; ca: string; cert: string; key: string; servername: string }

/** Reads a PEM file named by an env variable; the error names the variable (the caller turns it into a ConfigError). */
export function readPemFile (variable: string, file: string): Buffer | string {
  try {
    const data = readFileSync(file)
    if (data.length === 0) return `Invalid environment variable ${variable}: ${file} is empty`
    if (!data.toString('latin1').includes('-----BEGIN ')) return `Invalid environment variable ${variable}: ${file} is not a PEM file`
    return data
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    return `Invalid environment variable ${variable}: cannot read ${file} (${e.code ?? e.message.split('\n')[0]})`
  }
}

/**
 * ioredis `tls` options for a connection to `host` (the address actually dialed). Without a
 * configured servername: a host name is both the SNI and the name checked; an IP address is
 * checked against the certificate's IP SANs (Node sends no SNI for an IP).
 */
export function tlsOptionsFor (host: string, s: TlsSettings): ConnectionOptions {
  const servername = s.servername ?? (isIP(host) === 0 ? host : undefined)
  return {
    ...(s.ca !== undefined ? { ca: s.ca } : {}),
    ...(s.cert !== undefined ? { cert: s.cert } : {}),
    ...(s.key !== undefined ? { key: s.key } : {}),
    ...(servername !== undefined ? { servername } : {}),
    rejectUnauthorized: true
  }
}

/**
 * ioredis `tls` options to hand to a sentinel-mode client (`tls` / `sentinelTLS`): no servername
 * unless one is configured, so each connection is checked against the host it dials.
 */
export function tlsOptionsForAnyHost (s: TlsSettings): ConnectionOptions {
  return {
    ...(s.ca !== undefined ? { ca: s.ca } : {}),
    ...(s.cert !== undefined ? { cert: s.cert } : {}),
    ...(s.key !== undefined ? { key: s.key } : {}),
    ...(s.servername !== undefined ? { servername: s.servername } : {}),
    rejectUnauthorized: true
  }
}
