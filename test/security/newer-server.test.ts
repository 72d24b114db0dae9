/**
 * The command table comes from the server (issue 12 req 3), proved on a server newer than the
 * Redis 7.0 the suite runs: hand-written `COMMAND INFO` replies, in the RESP2 shape ioredis
 * returns, of Redis 8 commands (XACKDEL, HGETEX, HSETEX: from redis/redis src/commands/*.json)
 * and of RedisJSON's module commands (JSON.SET, JSON.GET, JSON.MGET: registered with the legacy
 * first/last/step triple and `@read`/`@write` `@json` categories, so Redis gives them its stand-in
 * key spec RW+access+update, module.c moduleCreateCommandProxy). Pure logic: the table, the policy,
 * and the table cache's refresh when the master changes, with a fake topology and fake connections.
 */
import t from 'tap'
import { OPEN_ACCESS, type Principal } from '../../src/auth.js'
import { CommandTable, CommandTables } from '../../src/security/command-table.js'
import { CommandGate } from '../../src/security/gate.js'
import { locate } from '../../src/security/keys.js'
import { CommandRefused, decide, NoPermission, routeOf, type Arg } from '../../src/security/policy.js'
import type { Config } from '../../src/config.js'
import type { Connections } from '../../src/redis/connections.js'
import type { Topology } from '../../src/topology.js'

const ADMIN: Principal = { name: 'admin', rights: new Set(['read', 'write', 'script', 'pubsub', 'ops']), prefix: '' }
const READER: Principal = { name: 'reader', rights: new Set(['read']), prefix: '' }
const SESS: Principal = { name: 'sess', rights: new Set(['read', 'write']), prefix: 'session:' }
const settings = { deny: new Set<string>(), maxValueBytes: 1024 }

type KeySpecFlags = string[]
/** One key spec as COMMAND answers it in RESP2 (maps as flat arrays): begin at `index`, a range of `lastkey`/`keystep`/`limit`. */
const rangeSpec = (flags: KeySpecFlags, index: number, lastkey = 0, keystep = 1, limit = 0, notes?: string): unknown[] => [
  ...(notes === undefined ? [] : ['notes', notes]),
  'flags', flags,
  'begin_search', ['type', 'index', 'spec', ['index', index]],
  'find_keys', ['type', 'range', 'spec', ['lastkey', lastkey, 'keystep', keystep, 'limit', limit]]
]
/** One COMMAND entry: [name, arity, flags, first, last, step, categories, tips, key specs, subcommands]. */
const entry = (name: string, arity: number, flags: string[], legacy: [number, number, number], categories: string[], specs: unknown[][]): unknown[] =>
  [name, arity, flags, ...legacy, categories, [], specs, []]

/** What a Redis 8.2 server with RedisJSON answers (the commands these tests need). */
const NEWER = [
  entry('get', 2, ['readonly', 'fast'], [1, 1, 1], ['@read', '@string', '@fast'], [rangeSpec(['RO', 'access'], 1)]),
  entry('set', -3, ['write', 'denyoom'], [1, 1, 1], ['@write', '@string', '@slow'], [rangeSpec(['RW', 'access', 'update', 'variable_flags'], 1)]),
  // src/commands/xackdel.json (8.2): WRITE FAST, @stream; key spec RW UPDATE DELETE at 1.
  entry('xackdel', -6, ['write', 'fast'], [1, 1, 1], ['@write', '@stream', '@fast'], [rangeSpec(['RW', 'update', 'delete'], 1)]),
  // src/commands/hgetex.json (8.0): WRITE FAST (it may change the fields' TTL), @hash; RW ACCESS UPDATE.
  entry('hgetex', -5, ['write', 'fast'], [1, 1, 1], ['@write', '@hash', '@fast'], [rangeSpec(['RW', 'access', 'update'], 1, 0, 1, 0, 'RW and UPDATE because it changes the TTL')]),
  // src/commands/hsetex.json (8.0): WRITE DENYOOM FAST, @hash; RW UPDATE.
  entry('hsetex', -6, ['write', 'denyoom', 'fast'], [1, 1, 1], ['@write', '@hash', '@fast'], [rangeSpec(['RW', 'update'], 1)]),
  // RedisJSON: ["json.get", ..., "readonly", 1,1,1, ACL::Read, ACL::from("json")]; module commands have arity -1.
  entry('json.get', -1, ['readonly', 'module'], [1, 1, 1], ['@read', '@json'], [rangeSpec(['RW', 'access', 'update'], 1)]),
  entry('json.set', -1, ['write', 'denyoom', 'module'], [1, 1, 1], ['@write', '@json'], [rangeSpec(['RW', 'access', 'update'], 1)]),
  // Declares only its first key (1,1,1) although every argument but the last is one.
  entry('json.mget', -1, ['readonly', 'module'], [1, 1, 1], ['@read', '@json'], [rangeSpec(['RW', 'access', 'update'], 1)]),
  // json.mset: 1,-1,3 (key path value, repeated).
  entry('json.mset', -1, ['write', 'denyoom', 'module'], [1, -1, 3], ['@write', '@json'], [rangeSpec(['RW', 'access', 'update'], 1, -1, 3)]),
  // Module commands the gateway must refuse whatever the token.
  entry('json.admin', -1, ['admin', 'module'], [0, 0, 0], ['@json'], []),
  entry('json.flushall', -1, ['write', 'module'], [1, 1, 1], ['@write', '@json', '@dangerous'], [rangeSpec(['RW', 'access', 'update'], 1)]),
  entry('json.noscript', -1, ['write', 'noscript', 'module'], [1, 1, 1], ['@write', '@json'], [rangeSpec(['RW', 'access', 'update'], 1)]),
  entry('json.wait', -1, ['readonly', 'blocking', 'module'], [1, 1, 1], ['@read', '@json'], [rangeSpec(['RW', 'access', 'update'], 1)]),
  entry('json.keyless', -1, ['readonly', 'module'], [0, 0, 0], ['@read', '@json'], []),
  // RediSearch-like: reads the keys its index selects, not the ones it names.
  entry('ft.search', -3, ['readonly', 'module'], [1, 1, 1], ['@read', '@search'], [rangeSpec(['RW', 'access', 'update'], 1)]),
  // An older RedisJSON (2.6) declares no ACL category at all.
  entry('json.type', -1, ['readonly', 'module'], [1, 1, 1], [], [rangeSpec(['RW', 'access', 'update'], 1)])
]
/** What a Redis 7.0 server without modules answers (GET and SET only, here). */
const OLDER = NEWER.slice(0, 2)

const table = CommandTable.fromReply(NEWER)
const d = (p: Principal, ...cmd: Arg[]): ReturnType<typeof decide> => decide(p, cmd, table, settings)

t.test('the recorded reply parses: key specs with notes, module flags, module categories', async t => {
  t.equal(table.size, NEWER.length)
  const hgetex = table.lookup('HGETEX', [])!.command
  t.same([...hgetex.keySpecs[0]!.flags], ['RW', 'access', 'update'], 'a key spec with "notes" parses')
  t.same(hgetex.keySpecs[0]!.begin, { type: 'index', index: 1 })
  t.same(hgetex.keySpecs[0]!.find, { type: 'range', lastkey: 0, keystep: 1, limit: 0 })
  const jget = table.lookup('JSON.GET', [])!.command
  t.ok(jget.flags.has('module') && jget.categories.has('json') && jget.categories.has('read'))
  t.throws(() => decide(ADMIN, ['HGETEX', 'h', 'FIELDS', '1', 'f'], CommandTable.fromReply(OLDER), settings), { message: "ERR unknown command 'HGETEX'" }, 'the older server\'s table: unknown')
})

t.test('Redis 8 commands: known, routed and key-checked from the server\'s own metadata', async t => {
  t.match(d(ADMIN, 'XACKDEL', 's', 'g', 'KEEPREF', 'IDS', '1', '1-0'), { name: 'xackdel', route: 'write', readOnly: false })
  t.match(d(ADMIN, 'HGETEX', 'h', 'FIELDS', '1', 'f'), { route: 'write', readOnly: false }, 'HGETEX may change TTLs: flagged write, on the master even without EX')
  t.match(d(ADMIN, 'HGETEX', 'h', 'EX', '10', 'FIELDS', '2', 'a', 'b'), { route: 'write' })
  t.match(d(ADMIN, 'HSETEX', 'h', 'FNX', 'EX', '10', 'FIELDS', '1', 'f', 'v'), { route: 'write' })
  t.equal(routeOf([d(ADMIN, 'GET', 'a'), d(ADMIN, 'HGETEX', 'h', 'FIELDS', '1', 'f')]), 'write', 'a pipeline holding HGETEX runs on the master')
  t.throws(() => d(READER, 'HGETEX', 'h', 'FIELDS', '1', 'f'), { message: /no write right/ }, 'a read-only token cannot run HGETEX')
  t.throws(() => d(READER, 'XACKDEL', 's', 'g', 'IDS', '1', '1-0'), NoPermission)
  t.throws(() => d(ADMIN, 'XACKDEL', 's', 'g'), { message: /wrong number of arguments/ }, 'arity from the server')

  t.same(locate(table.lookup('xackdel', [])!.command, ['xackdel', 's', 'g', 'IDS', '1', '1-0']).keys, ['s'], 'XACKDEL: one key, at 1')
  t.same(locate(table.lookup('hsetex', [])!.command, ['hsetex', 'h', 'FIELDS', '1', 'session:f', 'v']).keys, ['h'], 'HSETEX: fields are not keys')
  t.doesNotThrow(() => d(SESS, 'HGETEX', 'session:h', 'FIELDS', '1', 'other:f'), 'a prefixed token: the key is checked, the fields are not keys')
  t.throws(() => d(SESS, 'HGETEX', 'other:h', 'FIELDS', '1', 'f'), { message: /names another key/ })
  t.throws(() => d(SESS, 'XACKDEL', 'other:s', 'g', 'IDS', '1', '1-0'), NoPermission)
  t.throws(() => d(ADMIN, 'HSETEX', '__skv:ratelimit:x', 'FIELDS', '1', 'f', 'v'), { message: /reserved for the gateway/ })
  t.throws(() => decide(ADMIN, ['HGETEX', 'h', 'FIELDS', '1', 'f'], table, { ...settings, deny: new Set(['hgetex']) }), { message: /UPSTASH_DENY_COMMANDS/ })
})

t.test('RedisJSON: routed by the module\'s own flags, keys from its declared positions', async t => {
  t.match(d(ADMIN, 'JSON.GET', 'doc', '$.a'), { name: 'json.get', route: 'replica', readOnly: true },
    'JSON.GET is flagged readonly: a replica (Redis\'s stand-in RW key spec of a legacy module command says nothing)')
  t.match(d(READER, 'JSON.GET', 'doc'), { route: 'replica' }, 'a read-only token reads JSON')
  t.match(d(READER, 'JSON.MGET', 'a', 'b', '$'), { route: 'replica', readOnly: true })
  t.match(d(ADMIN, 'JSON.SET', 'doc', '$', '{"a":1}'), { name: 'json.set', route: 'write', readOnly: false })
  t.match(d(OPEN_ACCESS, 'JSON.SET', 'doc', '$', '{"a":1}', 'NX'), { route: 'write' }, 'the open gateway (r and w) writes JSON')
  t.throws(() => d(READER, 'JSON.SET', 'doc', '$', '1'), { message: /no write right/ })
  t.equal(routeOf([d(ADMIN, 'JSON.GET', 'a'), d(ADMIN, 'GET', 'b')]), 'replica', 'a read pipeline with JSON.GET stays on a replica')
  t.equal(routeOf([d(ADMIN, 'JSON.GET', 'a'), d(ADMIN, 'JSON.SET', 'a', '$', '1')]), 'write')
  t.same(locate(table.lookup('json.set', [])!.command, ['json.set', 'doc', '$', '1']).keys, ['doc'])
  t.same(locate(table.lookup('json.mset', [])!.command, ['json.mset', 'a', '$', '1', 'b', '$', '2']).keys, ['a', 'b'], 'JSON.MSET: 1,-1,3')
  t.match(d(ADMIN, 'JSON.MSET', 'a', '$', '1', 'b', '$', '2'), { route: 'write' })

  t.throws(() => d(SESS, 'JSON.GET', 'session:doc'), { message: /module command may touch keys it does not declare/ },
    'never for a prefixed token: JSON.MGET declares its first key only')
  t.throws(() => d(SESS, 'JSON.MGET', 'session:a', 'other:b', '$'), NoPermission)
  for (const cmd of [['JSON.GET', '__skv:x'], ['JSON.MGET', 'a', '__skv:ratelimit:x', '$'], ['JSON.SET', 'a', '$', '1', '__skv:x']]) {
    t.throws(() => d(ADMIN, ...cmd), { message: /reserved for the gateway/ }, `${cmd.join(' ')}: every argument may be an undeclared key`)
  }
  t.throws(() => d(ADMIN, 'JSON.SET', 'doc', '$', `"${'x'.repeat(1024)}"`), { message: /larger than KV_MAX_VALUE_BYTES/ })
  t.doesNotThrow(() => d(ADMIN, 'JSON.SET', 'doc', '$', `"${'x'.repeat(1000)}"`))
  t.throws(() => decide(ADMIN, ['JSON.SET', 'd', '$', '1'], table, { ...settings, deny: new Set(['json.set']) }), { message: /UPSTASH_DENY_COMMANDS/ })
})

t.test('module commands never pass the refusals: admin, dangerous, noscript, blocking, keyless, other families', async t => {
  const refused: Array<[string[], RegExp]> = [
    [['JSON.ADMIN', 'x'], /@admin|flagged admin/],
    [['JSON.FLUSHALL', 'k'], /@dangerous/],
    [['JSON.NOSCRIPT', 'k'], /flagged noscript/],
    [['JSON.WAIT', 'k'], /blocks a shared connection/],
    [['JSON.KEYLESS'], /must name the keys/],
    [['FT.SEARCH', 'idx', '*'], /outside the admitted data families/],
    [['JSON.TYPE', 'k'], /outside the admitted data families/]
  ]
  for (const [cmd, why] of refused) {
    t.throws(() => d(ADMIN, ...cmd), CommandRefused, `${cmd[0]}: 400`)
    t.throws(() => d(ADMIN, ...cmd), { message: why })
  }
})

/** A fake topology whose master can be switched, and fake connections answering COMMAND per node. */
function fakeDeployment (replies: Map<number, unknown[]>): { topology: Topology; connections: Connections; master: (port: number) => void; calls: number[] } {
  const snapshot: { master: { host: string; port: number } | null } = { master: null }
  const calls: number[] = []
  const connections = {
    get: (addr: { port: number }) => ({
      control: async () => ({
        call: async (name: string) => {
          if (name !== 'COMMAND') throw new Error(`unexpected ${name}`)
          calls.push(addr.port)
          return replies.get(addr.port)
        }
      })
    })
  } as unknown as Connections
  return { topology: { snapshot } as unknown as Topology, connections, master: port => { snapshot.master = { host: '127.0.0.1', port } }, calls }
}

t.test('the table is the current master\'s: read again when the master changes (mixed-version failover)', async t => {
  const replies = new Map([[7000, OLDER], [8000, NEWER]])
  const dep = fakeDeployment(replies)
  let now = 0
  const tables = new CommandTables(dep.topology, dep.connections, 100, () => now)
  t.ok(tables.isCommand('get'), 'before the first answer: the @ioredis/commands fallback knows GET')
  t.notOk(tables.isCommand('json.get'), 'and no module command')
  await t.rejects(tables.current(), /no master/)
  dep.master(7000)
  t.notOk((await tables.current()).has('hgetex'), 'a Redis 7.0 master: no HGETEX')
  t.notOk(tables.isCommand('hgetex'), 'the path form follows the read table')
  await tables.current()
  t.same(dep.calls, [7000], 'read once while the master stays')
  dep.master(8000)
  t.ok((await tables.current()).has('hgetex'), 'failover to a Redis 8 node: its table, read anew')
  t.ok(tables.isCommand('json.get') && tables.isCommand('HGETEX'))
  replies.set(7000, NEWER) // the old master upgraded in place while it was a replica
  dep.master(7000)
  t.ok((await tables.current()).has('hgetex'), 'back to the first address: read again, never a cached table of another server')
  t.same(dep.calls, [7000, 8000, 7000])
  now = 5_000
  await tables.current({ refreshOlderThanMs: 10_000 })
  t.same(dep.calls, [7000, 8000, 7000], 'a young table is not read again')
  now = 10_000
  await tables.current({ refreshOlderThanMs: 10_000 })
  t.same(dep.calls, [7000, 8000, 7000, 7000], 'an old one is, when asked')
})

t.test('the gate reads the table again before calling a command unknown (a module loaded since)', async t => {
  const replies = new Map([[7000, OLDER]])
  const dep = fakeDeployment(replies)
  dep.master(7000)
  const config = { commandTimeoutMs: 100, upstashDenyCommands: [], maxValueBytes: 1024 } as unknown as Config
  const gate = new CommandGate(config, dep.topology, dep.connections)
  let now = 0
  Object.assign(gate, { tables: new CommandTables(dep.topology, dep.connections, 100, () => now) })
  const [first] = await gate.check(ADMIN, [['JSON.GET', 'doc']], true)
  t.match(first, { message: "ERR unknown command 'JSON.GET'" }, 'unknown to a server without the module')
  replies.set(7000, NEWER) // MODULE LOAD on the master
  const [young] = await gate.check(ADMIN, [['JSON.GET', 'doc']], true)
  t.match(young, { message: /unknown command/ }, 'a table younger than 10 s is not read again (one COMMAND per 10 s at most)')
  now = 10_000
  const [known] = await gate.check(ADMIN, [['JSON.GET', 'doc'], ['NOSUCH']], true)
  t.match(known, { name: 'json.get', route: 'replica' }, 'an older one is: the module command is known')
  t.same(dep.calls, [7000, 7000])
})
