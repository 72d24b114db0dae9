/**
 * What the attack tests need to forge Redis payloads and hellos: the CRC64 of DUMP payloads
 * (Jones polynomial, reflected, as in Redis's crc64.c), a corrupt-but-checksummed listpack hash
 * payload (finding 2), a forged Sentinel hello (finding 1) and a rogue redis-server the test
 * starts and stops itself, by pid.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { Redis } from 'ioredis'
import { freePorts, signal, waitUntil } from './topology-procs.js'

/** Reflected form of the Jones polynomial 0xad93d23594c935a9. */
const POLY = 0x95ac9329ac4bc9b5n
const MASK = 0xffffffffffffffffn
const TABLE: bigint[] = Array.from({ length: 256 }, (_, n) => {
  let c = BigInt(n)
  for (let k = 0; k < 8; k++) c = (c & 1n) === 1n ? (c >> 1n) ^ POLY : c >> 1n
  return c
})

/** CRC64 (Jones, reflected, init 0, no final xor): crc64("123456789") = 0xe9c6d914c4b8d9ca. */
export function crc64 (data: Uint8Array, crc = 0n): bigint {
  for (const b of data) crc = (TABLE[Number((crc ^ BigInt(b)) & 0xffn)]! ^ (crc >> 8n)) & MASK
  return crc
}

/** DUMP's trailer: 2 bytes RDB version, then the CRC64 (little-endian) of everything before it. */
export function withCrc (payloadWithoutCrc: Buffer): Buffer {
  const trailer = Buffer.alloc(8)
  trailer.writeBigUInt64LE(crc64(payloadWithoutCrc))
  return Buffer.concat([payloadWithoutCrc, trailer])
}

/** True when the last 8 bytes of a DUMP payload are the CRC64 of the rest. */
export const crcMatches = (dump: Buffer): boolean => dump.subarray(-8).readBigUInt64LE() === crc64(dump.subarray(0, -8))

/**
 * A DUMP of a small listpack hash with one listpack header byte corrupted and the CRC recomputed:
 * the payload passes RESTORE's checksum, and (without sanitize-dump-payload) a later HGETALL hits a
 * Redis assertion. Layout: [type 0x10 hash-listpack][length-encoded string: the listpack] where the
 * listpack starts with 4 bytes total length and 2 bytes element count; the count is raised.
 */
export function corruptListpackHash (dump: Buffer): Buffer {
  if (dump[0] !== 0x10) throw new Error(`not a listpack hash payload (type byte ${dump[0]})`)
  const body = Buffer.from(dump.subarray(0, -8))
  // A string length below 64 is one byte 00xxxxxx; the listpack header follows it.
  if ((body[1]! & 0xc0) !== 0) throw new Error('expected a listpack shorter than 64 bytes')
  const countAt = 2 + 4
  body.writeUInt16LE(body.readUInt16LE(countAt) + 6, countAt)
  return withCrc(body)
}

/** The fields of a Sentinel hello: sentinel ip,port,runid,current_epoch,master name,ip,port,config_epoch. */
export function forgedHello (masterName: string, rogueHost: string, roguePort: number, epoch: number): string {
  const runid = 'f'.repeat(40)
  return ['127.0.0.1', '26999', runid, String(epoch), masterName, rogueHost, String(roguePort), String(epoch)].join(',')
}

export interface Rogue { port: number; pid: number; stop(): Promise<void>; client(): Redis }

/** A bare redis-server on a free loopback port (own temp dir), stopped by pid. */
export async function startRogue (): Promise<Rogue> {
  const [port = 0] = await freePorts(1)
  const dir = await mkdtemp(path.join(os.tmpdir(), 'skv-rogue-'))
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no'], { stdio: 'ignore' })
  const pid = child.pid
  if (pid === undefined) throw new Error('could not start the rogue redis-server')
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  const client = (): Redis => new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, retryStrategy: () => null, lazyConnect: false, connectTimeout: 1000 }).on('error', () => {})
  await waitUntil(`rogue redis-server :${port} to answer PING`, 10_000, async () => {
    const c = client()
    try { return (await c.ping()) === 'PONG' ? true : 'no PONG' } finally { c.disconnect() }
  }, 50)
  return {
    port,
    pid,
    client,
    stop: async () => {
      signal(pid, 'SIGTERM')
      const timer = setTimeout(() => signal(pid, 'SIGKILL'), 1000)
      await exited
      clearTimeout(timer)
      await rm(dir, { recursive: true, force: true })
    }
  }
}

/** A redis-server of our own for a payload that must be shown to be harmful; same as a rogue. */
export const startScratchRedis = startRogue
