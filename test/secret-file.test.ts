/**
 * REDIS_PASSWORD_FILE, REDIS_CONTROL_PASSWORD_FILE and REDIS_SENTINEL_PASSWORD_FILE (src/secret-file.ts):
 * a gateway process given only the files (compose secrets) logs in to a real password-protected
 * topology, and never prints a password; a bad file stops the start with one line naming the variable.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { ConfigError, loadConfig } from '../src/config.js'
import { readSecretFile } from '../src/secret-file.js'
import { gatewayEnv, runServer, startProcess } from './helpers/gateway.js'
import { topologyFor } from './helpers/topology.js'

const REDIS_PW = 'f1le-R3dis-secret'
const SENTINEL_PW = 'f1le-S3ntinel-secret'
const topo = await topologyFor(t, { password: REDIS_PW, sentinelPassword: SENTINEL_PW })
const dir = mkdtempSync(path.join(os.tmpdir(), 'skv-secret-file-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })

/** Writes `content` to a file of the temp dir (mode 600, as a secret) and returns its path. */
function secretFile (name: string, content: string): string {
  const file = path.join(dir, name)
  writeFileSync(file, content, { mode: 0o600 })
  return file
}

const env = gatewayEnv(topo)
const passwords = [env.REDIS_PASSWORD, env.REDIS_CONTROL_PASSWORD, env.REDIS_SENTINEL_PASSWORD]
/** The passwords only as files (written the way `echo pw > file` does), the variables themselves empty. */
const fromFiles = {
  REDIS_PASSWORD: '',
  REDIS_PASSWORD_FILE: secretFile('redis_password', `${env.REDIS_PASSWORD ?? ''}\n`),
  REDIS_CONTROL_PASSWORD: '',
  REDIS_CONTROL_PASSWORD_FILE: secretFile('control_password', `${env.REDIS_CONTROL_PASSWORD ?? ''}\n`),
  REDIS_SENTINEL_PASSWORD: '',
  REDIS_SENTINEL_PASSWORD_FILE: secretFile('sentinel_password', `${env.REDIS_SENTINEL_PASSWORD ?? ''}\n`)
}

t.test('a gateway given only the password files serves writes and reads and prints no password', async t => {
  t.ok(passwords.every(p => p !== undefined && p !== ''), 'the topology has a data, a control and a sentinel password')
  const gw = await startProcess(t, topo, { ...fromFiles, LOG_LEVEL: 'debug' })
  const put = await fetch(`${gw.url}/kv/secret-file%3A1`, { method: 'PUT', body: 'v' })
  t.equal(put.status, 201, 'PUT through the data user whose password came from a file')
  const get = await fetch(`${gw.url}/kv/secret-file%3A1?consistency=strong`)
  t.equal(await get.text(), 'v')
  t.equal(await gw.stop(), 0)
  for (const secret of passwords) t.notOk(gw.output().includes(secret ?? '\0'), 'no log line holds a password')
})

t.test('loadConfig: the file\'s content without its trailing newline; both set, empty or unreadable: one line naming the variable', async t => {
  const base = { REDIS_SENTINELS: topo.sentinelList }
  t.equal(loadConfig({ ...base, REDIS_PASSWORD_FILE: secretFile('crlf', 'p\u00e4ss word\r\n') }).redisPassword, 'p\u00e4ss word')
  t.equal(loadConfig({ ...base, REDIS_SENTINEL_PASSWORD_FILE: secretFile('bare', 'bare') }).sentinelPassword, 'bare', 'no newline at all')
  const refused: Array<[Record<string, string>, RegExp]> = [
    [{ REDIS_PASSWORD: 'x', REDIS_PASSWORD_FILE: fromFiles.REDIS_PASSWORD_FILE }, /REDIS_PASSWORD and REDIS_PASSWORD_FILE: set one of them, not both/],
    [{ REDIS_CONTROL_PASSWORD_FILE: secretFile('empty', '\n') }, /REDIS_CONTROL_PASSWORD_FILE: .* is empty/],
    [{ REDIS_SENTINEL_PASSWORD_FILE: path.join(dir, 'missing') }, /REDIS_SENTINEL_PASSWORD_FILE: cannot read .* \(ENOENT\)/],
    [{ REDIS_PASSWORD_FILE: secretFile('two-lines', 'a\nb\n') }, /REDIS_PASSWORD_FILE: .* more than one line/]
  ]
  for (const [vars, message] of refused) {
    const err = (() => { try { loadConfig({ ...base, ...vars }); return null } catch (e) { return e } })()
    t.ok(err instanceof ConfigError, `${Object.keys(vars).join(' + ')}: ConfigError`)
    t.match((err as Error).message, message)
  }
  t.match(readSecretFile('X_FILE', secretFile('big', 'x'.repeat(5000))), /over 4096 bytes/)
})

t.test('the server refuses an unreadable password file with one stderr line that holds no secret', async t => {
  const r = await runServer({ REDIS_SENTINELS: topo.sentinelList, REDIS_PASSWORD_FILE: path.join(dir, 'nope'), REDIS_SENTINEL_PASSWORD: SENTINEL_PW }, 10_000)
  t.not(r.code, 0)
  t.not(r.code, null, 'it exited by itself')
  const lines = r.stderr.split('\n').filter(l => l.trim() !== '')
  t.equal(lines.length, 1, `one line (${r.stderr})`)
  t.match(lines[0], /REDIS_PASSWORD_FILE/)
  t.notOk(r.stderr.includes(SENTINEL_PW), 'no password printed')
})
