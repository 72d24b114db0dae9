// Subscriptions over Server-Sent Events against a real Sentinel topology: @upstash/redis's own
// subscribe/psubscribe behaviour, fan-out of one Redis subscriber connection to 1,000 streams,
// pattern matching identical to Redis's, the wire format's escaping, heartbeats, the per-token
// limit, a client that stops reading, and a clean end of every stream at shutdown.
import http from 'node:http'
import net from 'node:net'
import { Redis as Upstash } from '@upstash/redis'
import t from 'tap'
import { startInProcess, startProcess } from './helpers/gateway.js'
import { dropSilentConnections, numsub, numsubAll, sleep, subscriberConnections, until } from './helpers/pubsub.js'
import { openSse, sse, type Refused, type SseClient } from './helpers/sse.js'
import { topologyFor } from './helpers/topology.js'

const TOKEN = 'pubsub-every-right-01'

interface RawStream { text: string; close(): void }

/** `n` streams opened with node:http (in batches of 100), their bodies accumulated as text. */
async function openRawStreams (base: string, path: string, headers: Record<string, string>, n: number): Promise<RawStream[]> {
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity })
  const out: RawStream[] = []
  for (let done = 0; done < n; done += 100) {
    out.push(...await Promise.all(Array.from({ length: Math.min(100, n - done) }, async () => await new Promise<RawStream>((resolve, reject) => {
      const req = http.request(`${base}${path}`, { method: 'POST', agent, headers: { ...headers, accept: 'text/event-stream' } }, res => {
        if (res.statusCode !== 200) { reject(new Error(`status ${res.statusCode}`)); return }
        const s: RawStream = { text: '', close: () => req.destroy() }
        res.setEncoding('utf8')
        res.on('data', (d: string) => { s.text += d })
        res.on('error', () => {})
        resolve(s)
      })
      req.on('error', reject)
      req.end('[]')
    }))))
  }
  return out
}

t.test('subscription streams', async (t) => {
  const topo = await topologyFor(t)
  const masterPort = (await topo.master()).port
  const master = topo.client(masterPort)
  t.teardown(() => master.disconnect())
  const { url, app } = await startInProcess(t, topo, {
    AUTH_TOKENS: `${TOKEN}:rwxp`,
    PUBSUB_MAX_STREAMS_PER_TOKEN: '1100',
    PUBSUB_MAX_BUFFERED_BYTES: '262144'
  })
  dropSilentConnections(t, app.server)
  const redis = new Upstash({ url, token: TOKEN, retry: false })
  const auth = { authorization: `Bearer ${TOKEN}` }

  await t.test('the SDK\'s subscribe (its own test suite\'s cases, waiting for events instead of fixed sleeps)', async (t) => {
    /** A Subscriber whose `subscribe` confirmations were all received. */
    const subscribed = async (channels: string[]): Promise<{ sub: ReturnType<Upstash['subscribe']>; counts: number[] }> => {
      const sub = redis.subscribe(channels)
      const counts: number[] = []
      sub.on('subscribe', n => counts.push(n))
      await until(() => counts.length === channels.length, 5000, `subscribe confirmations for ${channels.join(',')}`)
      return { sub, counts }
    }

    // receives a single published message
    {
      const got: unknown[] = []
      const { sub } = await subscribed(['test-single'])
      sub.on('message', d => got.push(d.message))
      await redis.publish('test-single', JSON.stringify('really?'))
      await until(() => got.length === 1, 3000, 'the message')
      await sleep(100)
      t.same(got, ['really?'], 'receives a single published message')
      await sub.unsubscribe()
    }
    // receives multiple messages in order
    {
      const got: Array<{ message: string }> = []
      const { sub } = await subscribed(['test-multiple'])
      sub.on('message', d => got.push(d.message as { message: string }))
      const messages = ['First', 'Second', 'Third'].map((m, i) => ({ user: 'user1', message: m, timestamp: Date.now() + i }))
      for (const m of messages) await redis.publish('test-multiple', m)
      await until(() => got.length === 3, 3000, 'three messages')
      t.same(got.map(m => m.message), ['First', 'Second', 'Third'], 'receives multiple messages in order')
      await sub.unsubscribe()
    }
    // handles channel-specific messages
    {
      const got: unknown[] = []
      const { sub } = await subscribed(['test-specific'])
      sub.on('message:test-specific', d => got.push(d.message))
      const m = { user: 'testUser', message: 'Channel specific', timestamp: Date.now() }
      await redis.publish('test-specific', m)
      await until(() => got.length === 1, 3000, 'the message')
      t.same(got, [m], 'handles channel-specific messages')
      await sub.unsubscribe()
    }
    // multiple subscribers receive the same message
    {
      const got1: unknown[] = []
      const got2: unknown[] = []
      const [a, b] = await Promise.all([subscribed(['test-multi-sub']), subscribed(['test-multi-sub'])])
      a.sub.on('message', d => got1.push(d.message))
      b.sub.on('message', d => got2.push(d.message))
      const m = { user: 'testUser', message: 'Broadcast', timestamp: Date.now() }
      await redis.publish('test-multi-sub', m)
      await until(() => got1.length === 1 && got2.length === 1, 3000, 'the message twice')
      t.same([got1, got2], [[m], [m]], 'multiple subscribers receive the same message')
      await Promise.all([a.sub.unsubscribe(), b.sub.unsubscribe()])
    }
    // unsubscribe from a specific channel
    {
      const got: Record<string, unknown[]> = { channel1: [], channel2: [] }
      const { sub } = await subscribed(['channel1', 'channel2'])
      sub.on('message', d => got[d.channel]!.push(d.message))
      await redis.publish('channel1', { test: 'before1' })
      await redis.publish('channel2', { test: 'before2' })
      await until(() => got.channel1!.length === 1 && got.channel2!.length === 1, 3000, 'one message per channel')
      await sub.unsubscribe(['channel1'])
      t.same(sub.getSubscribedChannels(), ['channel2'])
      got.channel1 = []
      got.channel2 = []
      // The aborted stream is gone once the gateway saw the client leave: its channel has no subscriber left.
        const deadline = Date.now() + 3000
      while (await numsubAll(topo, 'channel1') !== 0 && Date.now() < deadline) await sleep(20)
      await redis.publish('channel1', { test: 'after1' })
      await redis.publish('channel2', { test: 'after2' })
      await until(() => got.channel2!.length === 1, 3000, 'the channel2 message')
      await sleep(200)
      t.same(got, { channel1: [], channel2: [{ test: 'after2' }] }, 'unsubscribe from a specific channel')
      await sub.unsubscribe()
    }
    // emits subscribe event with count; the count is per stream
    {
      const a = await subscribed(['test-channel'])
      const b = await subscribed(['test-channel'])
      t.same([a.counts, b.counts], [[1], [1]], 'subscribe event with count 1, for each subscription')
      await Promise.all([a.sub.unsubscribe(), b.sub.unsubscribe()])
    }
  })

  await t.test('the SDK\'s psubscribe', async (t) => {
    const psubscribed = async (patterns: string[]): Promise<ReturnType<Upstash['psubscribe']>> => {
      const sub = redis.psubscribe(patterns)
      let n = 0
      sub.on('psubscribe', () => n++)
      await until(() => n === patterns.length, 5000, `psubscribe confirmations for ${patterns.join(',')}`)
      return sub
    }
    type P = { pattern: string; channel: string; message: unknown }
    // receives pattern matched messages
    {
      const got: P[] = []
      const sub = await psubscribe1(['user:*'])
      sub.on('pmessage', d => got.push(d as P))
      const m = { user: 'testUser', message: 'Hello, World!', timestamp: Date.now() }
      await redis.publish('user:123', m)
      await redis.publish('user:456', m)
      await redis.publish('other:789', m)
      await until(() => got.length >= 2, 3000, 'two pattern messages')
      await sleep(200)
      t.same(got, [{ pattern: 'user:*', channel: 'user:123', message: m }, { pattern: 'user:*', channel: 'user:456', message: m }], 'receives pattern matched messages, not others')
      await sub.unsubscribe()
    }
    // pattern-specific messages with channel info; several patterns; unsubscribe from one
    {
      const got: P[] = []
      const sub = await psubscribe1(['chat:*:messages', 'user:*'])
      sub.on('pmessage', d => got.push(d as P))
      await redis.publish('chat:room1:messages', { msg: 'Hello Room 1' })
      await redis.publish('chat:room1:users', { msg: 'User joined' })
      await redis.publish('user:123', { type: 'user' })
      await until(() => got.length >= 2, 3000, 'two pattern messages')
      await sleep(200)
      t.same(got.map(g => `${g.pattern} ${g.channel}`), ['chat:*:messages chat:room1:messages', 'user:* user:123'], 'each message with its pattern and channel')
      await sub.unsubscribe(['user:*'])
      t.same(sub.getSubscribedChannels(), ['chat:*:messages'])
      got.length = 0
      await sleep(300)
      await redis.publish('user:123', { msg: 'user2' })
      await redis.publish('chat:room2:messages', { msg: 'chat2' })
      await until(() => got.length >= 1, 3000, 'the chat message')
      await sleep(200)
      t.same(got.map(g => g.channel), ['chat:room2:messages'], 'unsubscribe from a specific pattern')
      await sub.unsubscribe()
    }
    // pattern and regular subscriptions work together
    {
      const p: P[] = []
      const c: unknown[] = []
      const ps = await psubscribe1(['user:*'])
      const cs = redis.subscribe(['user:123'])
      let confirmed = false
      cs.on('subscribe', () => { confirmed = true })
      await until(() => confirmed, 5000, 'subscribe confirmation')
      ps.on('pmessage', d => p.push(d as P))
      cs.on('message', d => c.push(d.message))
      await redis.publish('user:123', { msg: 'Hello' })
      await until(() => p.length === 1 && c.length === 1, 3000, 'both messages')
      t.same([p[0]?.message, c[0]], [{ msg: 'Hello' }, { msg: 'Hello' }], 'pattern and regular subscriptions work together')
      await Promise.all([ps.unsubscribe(), cs.unsubscribe()])
    }
    async function psubscribe1 (patterns: string[]): Promise<ReturnType<Upstash['psubscribe']>> { return await psubscribed(patterns) }
  })

  await t.test('patterns select exactly the channels Redis\'s own PSUBSCRIBE selects', async (t) => {
    const patterns = ['g:*', 'g:?', 'g:[abc]*', 'g:[^a]', 'g:[a-c]x', 'g:[c-a]y', 'g:\\*', 'g:*z*z', 'g:[', 'g:[\\]]', 'g:ü?', 'g:**a']
    const channels = ['g:a', 'g:b', 'g:d', 'g:ax', 'g:bx', 'g:dx', 'g:by', 'g:*', 'g:zz', 'g:azbz', 'g:[', 'g:]', 'g:üx', 'g:ü', 'g:aa', 'g:', 'g:abcdea', 'h:a']
    // Redis's answer: a direct subscriber as the default user.
    const direct = topo.client(masterPort)
    t.teardown(() => direct.disconnect())
    const want: string[] = []
    direct.on('pmessage', (p: string, ch: string) => want.push(`${p} ${ch}`))
    await direct.psubscribe(...patterns)
    const s = await sse(`${url}/psubscribe/${patterns.map(encodeURIComponent).join('/')}`, auth)
    await s.waitFor(d => d.startsWith(`psubscribe,g:**a,${patterns.length}`))
    for (const ch of channels) await master.publish(ch, 'x')
    await master.publish('g:end', 'end')
    await s.waitFor(d => d === 'pmessage,g:*,g:end,end', 5000, 'the last message')
    await until(() => want.includes('g:* g:end'), 3000, 'the direct subscriber\'s last message')
    const got = s.data.filter(d => d.startsWith('pmessage,')).map(d => { const [, p, ch] = d.split(','); return `${p} ${ch}` })
    t.same(got.sort(), want.sort(), `the gateway matched ${got.length} (pattern, channel) pairs, exactly Redis's`)
    s.close()
  })

  await t.test('the wire format: line breaks cannot forge events', async (t) => {
    const s = await sse(`${url}/psubscribe/wire:*`, auth)
    await s.waitFor(d => d.startsWith('psubscribe,wire:*,1'))
    await master.publish('wire:a', 'line1\ndata: message,forged,1\r\nmore')
    await master.publish('wire:b\ndata: message,forged,2', 'x')
    await master.publish('wire:c', 'plain, with commas')
    await s.waitFor(d => d.includes('plain, with commas'))
    t.same(s.data.slice(1), [
      `pmessage,wire:*,wire:a,${JSON.stringify('line1\ndata: message,forged,1\r\nmore')}`,
      `pmessage,wire:*,${JSON.stringify('wire:b\ndata: message,forged,2')},x`,
      'pmessage,wire:*,wire:c,plain, with commas'
    ], 'a field holding a line break is a JSON string; nothing else is touched')
    s.close()
  })

  await t.test('1,000 concurrent streams on one channel share one Redis subscriber connection', async (t) => {
    // node:http clients (fetch's web streams cost more CPU than the gateway itself on this 2-core machine).
    const started = Date.now()
    const clients = await openRawStreams(url, '/subscribe/fanout', auth, 1000)
    t.teardown(() => { for (const c of clients) c.close() })
    await until(() => clients.every(c => c.text.includes('data: subscribe,fanout,1\n\n')), 20_000, 'every confirmation')
    const opened = Date.now() - started
    const conns = await subscriberConnections(topo)
    t.same(Object.values(conns), [1], `one subscriber connection in the whole topology: ${JSON.stringify(conns)}`)
    const node = Number(Object.keys(conns)[0])
    t.not(node, masterPort, 'on a replica, not the master')
    t.equal(await numsub(topo, node, 'fanout'), 1, 'the replica counts ONE subscriber of the channel')
    const sent = Date.now()
    for (let i = 0; i < 3; i++) await master.publish('fanout', `m${i}`)
    await until(() => clients.every(c => c.text.includes('data: message,fanout,m2\n\n')), 10_000, 'the last message on every stream')
    const delivered = Date.now() - sent
    const want = 'data: subscribe,fanout,1\n\ndata: message,fanout,m0\n\ndata: message,fanout,m1\n\ndata: message,fanout,m2\n\n'
    t.equal(clients.filter(c => c.text === want).length, 1000, 'every stream got the three messages, in order, once')
    t.comment(`1,000 streams opened in ${opened} ms; 3 messages delivered to all of them in ${delivered} ms`)
    for (const c of clients) c.close()
    const deadline = Date.now() + 5000
    while (await numsub(topo, node, 'fanout') !== 0 && Date.now() < deadline) await sleep(50)
    t.equal(await numsub(topo, node, 'fanout'), 0, 'once every client left, the channel is unsubscribed')
    t.same(Object.values(await subscriberConnections(topo)), [1], 'still one subscriber connection')
  })

  await t.test('a client that stops reading is disconnected; the others are not held back', async (t) => {
    const healthy = await sse(`${url}/subscribe/slow`, auth)
    const socket = net.connect(Number(new URL(url).port), '127.0.0.1')
    t.teardown(() => socket.destroy())
    let received = 0
    await new Promise<void>((resolve, reject) => {
      let head = ''
      socket.once('error', reject)
      socket.on('data', (d: Buffer) => { received += d.length; head += d.toString('latin1'); if (head.includes('subscribe,slow,1')) resolve() })
      socket.write(`GET /subscribe/slow?_token=${TOKEN} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`)
    })
    socket.pause()
    await healthy.waitFor(d => d === 'subscribe,slow,1')
    const ended = new Promise<string>(resolve => {
      socket.on('end', () => resolve('end'))
      socket.on('close', () => resolve('close'))
      socket.on('error', (e: Error) => resolve(e.message))
    })
    // 12.8 MB: more than the loopback socket buffers plus the gateway's 256 KB (PUBSUB_MAX_BUFFERED_BYTES).
    const big = Buffer.alloc(64 * 1024, 'x')
    const count = 200
    for (let i = 0; i < count; i++) await master.publish('slow', big)
    await master.publish('slow', 'after')
    // 12.8 MB parsed as SSE by this very process (the gateway runs in it too): seconds on a loaded machine.
    await healthy.waitFor(d => d === 'message,slow,after', 30_000)
    t.equal(healthy.data.length, count + 2, 'a reading client on the same channel received every message', { got: healthy.data.map(d => `${d.slice(0, 30)}..${d.length}`).filter((d, i, a) => i === 0 || d !== a[i - 1]) })
    socket.resume()
    const how = await Promise.race([ended, sleep(5000).then(() => 'still open')])
    t.not(how, 'still open', `the gateway ended the slow client's stream (${how})`)
    t.ok(received < count * big.length, `the slow client got ${received} of ${count * big.length} bytes published`)
    healthy.close()
  })

  await t.test('at most PUBSUB_MAX_STREAMS_PER_TOKEN streams per token: 429 JSON', async (t) => {
    const limited = await startInProcess(t, topo, { AUTH_TOKENS: `${TOKEN}:rwxp,other-token-0002:p`, PUBSUB_MAX_STREAMS_PER_TOKEN: '2', PUBSUB_HEARTBEAT_MS: '200' })
    const a = await sse(`${limited.url}/subscribe/lim`, auth)
    await until(() => a.comments >= 2, 2000, 'two heartbeat comments (PUBSUB_HEARTBEAT_MS=200)')
    t.pass('idle streams get heartbeat comments')
    const b = await sse(`${limited.url}/psubscribe/lim*`, auth, 'GET')
    const refused = await openSse(`${limited.url}/subscribe/lim`, auth)
    t.ok(!('waitFor' in refused), 'the third stream is refused')
    if (!('waitFor' in refused)) {
      t.equal(refused.status, 429)
      t.equal(refused.headers['content-type'], 'application/json; charset=utf-8')
      t.equal(refused.headers['retry-after'], '1')
      t.match(refused.json(), { error: /^ERR this token already holds 2 open subscription streams \(PUBSUB_MAX_STREAMS_PER_TOKEN\)$/ })
    }
    const other = await sse(`${limited.url}/subscribe/lim?_token=other-token-0002`, {}, 'GET')
    t.pass('another token still opens streams')
    a.close()
    await a.ended
    let again: SseClient | Refused = await openSse(`${limited.url}/subscribe/lim`, auth)
    for (let i = 0; i < 50 && !('waitFor' in again); i++) { await sleep(20); again = await openSse(`${limited.url}/subscribe/lim`, auth) }
    t.ok('waitFor' in again, 'a closed stream gives its slot back')
    for (const c of [b, other, again]) if ('waitFor' in c) c.close()
  })
})

t.test('graceful shutdown ends every stream cleanly', async (t) => {
  const topo = await topologyFor(t)
  const gw = await startProcess(t, topo, { AUTH_TOKENS: `${TOKEN}:rwxp` })
  const a = await sse(`${gw.url}/subscribe/bye/bye2`, { authorization: `Bearer ${TOKEN}` })
  const b = await sse(`${gw.url}/psubscribe/bye*?_token=${TOKEN}`, {}, 'GET')
  await a.waitFor(d => d === 'subscribe,bye2,2')
  await b.waitFor(d => d === 'psubscribe,bye*,1')
  const started = Date.now()
  const code = await gw.stop()
  const ms = Date.now() - started
  await Promise.all([a.ended, b.ended])
  t.equal(code, 0, `the process exited 0 after ${ms} ms`)
  t.ok(ms < 5000, 'without waiting for the shutdown timeout')
  t.same(a.data.slice(-2), ['unsubscribe,bye,1', 'unsubscribe,bye2,0'], 'unsubscribe events, then the end of the stream')
  t.same(b.data.slice(-1), ['punsubscribe,bye*,0'])
})
