/**
 * The README's shell examples, run as a reader would: every ```sh block that talks to the demo's
 * `localhost:3000`, in the order written, each as one bash script (cwd: the repository) against a
 * real gateway process in front of a real topology, configured as `npm run demo` configures it.
 * A wrapper puts each HTTP status curl got on stderr, so the statuses can be checked without
 * changing what the commands print.
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { startProcess } from './helpers/gateway.js'
import { topologyFor } from './helpers/topology.js'

const root = fileURLToPath(new URL(new URL('../', import.meta.url).href.endsWith('/dist/') ? '../../' : '../', import.meta.url))
const readme = readFileSync(path.join(root, 'README.md'), 'utf8')

/** The ```sh blocks that call the demo gateway, in README order. */
const blocks = [...readme.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map(m => m[1] ?? '').filter(b => b.includes('localhost:3000'))

/** Statuses a block must produce, for the blocks this file knows (by a line only that block has). */
const EXPECTED: Array<{ marker: string; statuses: number[]; check?: (out: string) => string | undefined }> = [
  {
    marker: "--data-binary 'Alice' 'localhost:3000/kv/user:1'",
    statuses: [201, 200, 200, 204, 200],
    check: out => /^x-served-by: replica/im.test(out) && /^x-served-by: master/im.test(out) && out.includes('Alice') ? undefined : 'Alice from a replica, then from the master'
  },
  { marker: 'kv/files%2Fpackage.json', statuses: [201, 200, 201], check: out => out.includes('identical') ? undefined : 'cmp says identical' },
  { marker: 'localhost:3000/kv/counter', statuses: [201, 200, 200] },
  {
    marker: 'localhost:3000/kv/_batch',
    statuses: [200],
    check: out => {
      const r = JSON.parse(out) as { results: Array<{ status: number; value?: string }> }
      return r.results.map(x => x.status).join() === '201,200,404' && r.results[1]?.value === '{"items":3}' ? undefined : `results ${out}`
    }
  }
]

const topo = await topologyFor(t)
// As `npm run demo` runs it: the topology's REDIS_* settings only, no tokens.
const gw = await startProcess(t, topo, { LOG_LEVEL: 'warn' })
const dir = mkdtempSync(path.join(os.tmpdir(), 'skv-readme-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
const realCurl = spawnSync('sh', ['-c', 'command -v curl'], { encoding: 'utf8' }).stdout.trim()
writeFileSync(path.join(dir, 'curl'), `#!/bin/sh\nexec ${realCurl} -w '%{stderr}@@status %{http_code}\\n' "$@"\n`)
chmodSync(path.join(dir, 'curl'), 0o755)

t.test('the README has the examples this test knows', async t => {
  t.ok(realCurl !== '', 'curl is installed')
  for (const e of EXPECTED) t.ok(blocks.some(b => b.includes(e.marker)), `a block with ${e.marker}`)
})

for (const [i, block] of blocks.entries()) {
  const first = block.split('\n')[0] ?? ''
  t.test(`block ${i + 1}: ${first.slice(0, 70)}`, async t => {
    const script = block.replaceAll('localhost:3000', gw.url.replace('http://', ''))
    const r = spawnSync('bash', ['-c', script], {
      cwd: root, encoding: 'utf8', timeout: 30_000, env: { ...process.env, PATH: `${dir}:${process.env.PATH ?? ''}` }
    })
    const statuses = [...r.stderr.matchAll(/^@@status (\d+)$/gm)].map(m => Number(m[1]))
    const errors = r.stderr.replace(/^@@status \d+\n?/gm, '')
    t.equal(r.status, 0, `exits 0 (stderr: ${errors.slice(0, 500)})`)
    t.ok(statuses.length > 0, 'curl was called')
    t.ok(statuses.every(s => s > 0 && s < 500), `no 5xx, every request answered (${statuses.join(' ')})`)
    const expected = EXPECTED.find(e => block.includes(e.marker))
    if (expected !== undefined) {
      t.same(statuses, expected.statuses, 'the statuses the comments promise')
      const problem = expected.check?.(r.stdout)
      t.equal(problem, undefined, problem ?? 'the output shows what the README says')
    }
  })
}
