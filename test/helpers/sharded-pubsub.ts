/**
 * Sharded pub/sub in tests (SSUBSCRIBE/SPUBLISH): a client SSUBSCRIBEd straight to one Redis node,
 * the command endpoint's three forms for SPUBLISH, and the refusals both modes share.
 */
import type { Redis } from 'ioredis'
import type { Test } from 'tap'
import { openSse, type SseClient } from './sse.js'

/** A direct SSUBSCRIBE client: every `channel,message` it received, in order. */
export interface DirectSubscriber { got: string[]; close(): void }

/** SSUBSCRIBEs `client` (a connection to the node serving the channels' slot) to `channels`, each slot on its own. */
export async function directSubscriber (client: Redis, channels: readonly string[]): Promise<DirectSubscriber> {
  const got: string[] = []
  client.on('smessage', (channel: string, message: string) => got.push(`${channel},${message}`))
  // ioredis reports the `sunsubscribe` Redis pushes when the slot leaves the node (failover, migration) as an error.
  client.on('error', () => {})
  for (const c of channels) await client.ssubscribe(c)
  return { got, close: () => client.disconnect() }
}

/** The command endpoint's answer: HTTP status and JSON body. */
export async function command (url: string, token: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  return { status: r.status, json: await r.json() }
}

/** SPUBLISH through the gateway as POST / (JSON array): the number of receivers Redis answered. */
export async function spublish (url: string, token: string, channel: string, message: string): Promise<number> {
  const r = await command(url, token, '/', ['SPUBLISH', channel, message])
  if (r.status !== 200) throw new Error(`SPUBLISH ${channel}: ${r.status} ${JSON.stringify(r.json)}`)
  return r.json.result as number
}

/** Status and body of a stream request the gateway refuses (200 if it opened one: then closed). */
export async function refusedStream (url: string, path: string, token: string): Promise<[number, string]> {
  const r = await openSse(`${url}${path}`, { authorization: `Bearer ${token}` })
  if ('waitFor' in r) { r.close(); return [200, ''] }
  return [r.status, r.text]
}

/**
 * The refusals of both modes, then the attack's effect checked on the server: `/ssubscribe/__x`
 * and SPUBLISH `__x` (reserved, in the three forms of the command endpoint), a stream and SPUBLISH
 * without the `p` right; then `spy` (SSUBSCRIBEd to `__x` on the node serving its slot) got
 * nothing and `stream` (open on `channel`) got no refused message, only the one published after.
 */
export async function checkRefusals (t: Test, url: string, tokens: { p: string; noP: string }, channel: string, spy: DirectSubscriber, stream: SseClient): Promise<void> {
  const [reserved, reservedText] = await refusedStream(url, '/ssubscribe/__x', tokens.p)
  t.equal(reserved, 403, 'a reserved channel: 403')
  t.match(reservedText, /NOPERM/)
  const [noP, noPText] = await refusedStream(url, `/ssubscribe/${channel}`, tokens.noP)
  t.equal(noP, 403, `a token without p: 403 ${noPText}`)
  const pub = await command(url, tokens.p, '/', ['SPUBLISH', '__x', 'attack'])
  t.equal(pub.status, 403, 'SPUBLISH on a reserved channel: 403')
  t.match(pub.json, { error: /^NOPERM/ })
  const pathForm = await command(url, tokens.p, '/spublish/__x/attack')
  t.equal(pathForm.status, 403, 'the path form too')
  const pipe = await command(url, tokens.p, '/pipeline', [['SPUBLISH', '__x', 'attack']])
  t.match(pipe.json, [{ error: /^NOPERM/ }], 'and in a pipeline: its own NOPERM entry')
  const noPPub = await command(url, tokens.noP, '/', ['SPUBLISH', channel, 'attack'])
  t.equal(noPPub.status, 403, 'SPUBLISH without p: 403')
  // A message published after the refused ones: once it arrived, any of them would have too.
  await spublish(url, tokens.p, channel, 'after-attack')
  await stream.waitFor(d => d === `smessage,${channel},after-attack`, 5000, 'the message after the refusals')
  t.same(spy.got, [], 'the reserved channel got nothing on the server')
  t.notOk(stream.data.some(d => d.includes('__x') || d.endsWith(',attack')), 'no refused message on the stream')
}

/** Subscribers of sharded channel `channel` on the node of `client` (PUBSUB SHARDNUMSUB); disconnects it. */
export async function shardNumsub (client: Redis, channel: string): Promise<number> {
  try {
    return Number(((await client.call('PUBSUB', 'SHARDNUMSUB', channel)) as unknown[])[1])
  } finally {
    client.disconnect()
  }
}

/**
 * After a failover: SPUBLISHes `${prefix}-<n>` through the gateway (its 503s retried) every 300 ms
 * until `stream` receives one, within `ms`; returns the one received. Those published while the
 * stream's subscription moved may be lost (at-most-once): the stream must receive again.
 */
export async function spublishUntilReceived (url: string, token: string, channel: string, prefix: string, stream: SseClient, ms: number): Promise<string> {
  const deadline = Date.now() + ms
  for (let n = 0; ; n++) {
    const m = `${prefix}-${n}`
    try { await spublish(url, token, channel, m) } catch (err) { if (Date.now() > deadline) throw err }
    try {
      return await stream.waitFor(d => d.startsWith(`smessage,${channel},${prefix}-`), 300)
    } catch (err) {
      if (Date.now() > deadline) throw err
    }
  }
}
