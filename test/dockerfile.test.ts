// The Dockerfile, read as text (no Docker engine needed): multi-stage, non-root, a HEALTHCHECK on
// /healthz, `node dist/src/server.js` as the command, and a runtime stage that copies only build
// output that exists after `npm run build`.
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { PRODUCTION_NODE_OPTIONS } from '../src/runtime.js'

/** Project root, whether this file runs from test/ (tap) or dist/test/. */
const root = (() => {
  const here = new URL('../', import.meta.url)
  return fileURLToPath(here.href.endsWith('/dist/') ? new URL('../', here) : here)
})()

interface Instruction { keyword: string; args: string; line: number }
interface Stage { from: string; name?: string; workdir: string; instructions: Instruction[] }

/** Logical instructions (continuations joined, comments and blank lines dropped), grouped by stage. */
function parseDockerfile (text: string): Stage[] {
  const stages: Stage[] = []
  let pending = ''
  let startLine = 0
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] ?? ''
    if (pending === '' && /^\s*(#|$)/.test(raw)) continue
    if (pending !== '' && /^\s*#/.test(raw)) continue // comment lines inside a continuation are ignored
    if (pending === '') startLine = i + 1
    const continued = /\\\s*$/.test(raw)
    pending += (pending === '' ? '' : ' ') + raw.replace(/\\\s*$/, '').trim()
    if (continued) continue
    const m = /^(\S+)\s*(.*)$/.exec(pending)
    pending = ''
    if (!m) continue
    const ins = { keyword: (m[1] ?? '').toUpperCase(), args: (m[2] ?? '').trim(), line: startLine }
    if (ins.keyword === 'FROM') {
      const f = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)
      stages.push({ from: f?.[1] ?? ins.args, ...(f?.[2] === undefined ? {} : { name: f[2] }), workdir: '/', instructions: [] })
      continue
    }
    const stage = stages[stages.length - 1]
    if (!stage) throw new Error(`line ${ins.line}: ${ins.keyword} before the first FROM`)
    if (ins.keyword === 'WORKDIR') stage.workdir = path.posix.resolve(stage.workdir, ins.args)
    stage.instructions.push(ins)
  }
  return stages
}

/** Exec form (JSON array) of CMD/ENTRYPOINT/HEALTHCHECK CMD, or undefined for the shell form. */
function execForm (args: string): string[] | undefined {
  try {
    const v: unknown = JSON.parse(args)
    return Array.isArray(v) && v.every(x => typeof x === 'string') ? v : undefined
  } catch {
    return undefined
  }
}

interface Copy { from?: string; sources: string[]; dest: string }
function parseCopy (args: string): Copy {
  const words = args.match(/(?:"[^"]*"|\S)+/g) ?? []
  const flags = new Map<string, string>()
  while (words[0]?.startsWith('--') === true) {
    const [k = '', v = ''] = (words.shift() ?? '').slice(2).split('=')
    flags.set(k, v)
  }
  const rest = execForm(words.join(' ')) ?? words
  const from = flags.get('from')
  return { ...(from === undefined ? {} : { from }), sources: rest.slice(0, -1), dest: rest[rest.length - 1] ?? '' }
}

/** ENV in both forms: `K=V K2=V2` and the legacy `K V`. */
function envOf (stage: Stage): Map<string, string> {
  const env = new Map<string, string>()
  for (const ins of stage.instructions.filter(i => i.keyword === 'ENV')) {
    if (ins.args.includes('=')) {
      for (const m of ins.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)/g)) env.set(m[1] ?? '', (m[2] ?? '').replace(/^"|"$/g, ''))
    } else {
      const [k = '', ...v] = ins.args.split(/\s+/)
      env.set(k, v.join(' '))
    }
  }
  return env
}

const text = readFileSync(path.join(root, 'Dockerfile'), 'utf8')
const stages = parseDockerfile(text)
const build = stages[0]
const runtime = stages[stages.length - 1]
const all = (s: Stage | undefined, keyword: string): Instruction[] => s?.instructions.filter(i => i.keyword === keyword) ?? []

/** The first Node.js release of each LTS line still supported in December 2026 and its end of life. */
const SUPPORTED_LTS: Record<number, { since: string; endOfLife: string }> = {
  24: { since: '24.11.0', endOfLife: '2028-04-30' },
  26: { since: '26.13.0', endOfLife: '2029-04-30' }
}

t.test('multi-stage build on one exact Node.js LTS release (bookworm-slim)', async (t) => {
  t.ok(stages.length >= 2, `2+ FROM (got ${stages.length})`)
  const images = new Set(stages.map(s => s.from))
  t.equal(images.size, 1, `every stage FROM the same image (${[...images].join(', ')})`)
  const m = /^node:(\d+)\.(\d+)\.(\d+)-bookworm-slim$/.exec(build?.from ?? '')
  t.ok(m, `an exact version tag node:X.Y.Z-bookworm-slim, not a moving one (got ${build?.from})`)
  const [major, minor, patch] = (m?.slice(1) ?? []).map(Number) as [number, number, number]
  const line = SUPPORTED_LTS[major]
  t.ok(line, `Node.js ${major} is a supported LTS line (Node.js 20 reached its end of life on 2026-04-30)`)
  const [lMinor, lPatch] = (line?.since ?? '0.0.0').split('.').slice(1).map(Number) as [number, number]
  t.ok(minor > lMinor || (minor === lMinor && patch >= lPatch), `${major}.${minor}.${patch} is an LTS release of that line (from ${line?.since})`)
  const engines = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { engines?: { node?: string } }).engines?.node ?? ''
  const floor = /^>=(\d+)/.exec(engines)?.[1]
  t.ok(floor !== undefined && Number(floor) <= major, `package.json engines (${engines}) admits the image's Node.js ${major}`)
  const runs = all(build, 'RUN').map(i => i.args).join(' && ')
  t.match(runs, /npm ci\b/, 'the build stage installs with npm ci (from the lockfile)')
  t.match(runs, /npm run build\b/, 'the build stage compiles')
  t.ok(/npm prune --omit=dev\b/.test(runs) || /npm ci\b[^&]*--omit=dev\b/.test(runs), 'dev dependencies are dropped before the runtime copy')
  t.ok(all(build, 'COPY').some(i => /package-lock\.json/.test(i.args)), 'the lockfile is copied for npm ci')
})

t.test('runtime stage: non-root, configured through env, health-checked, runs node directly', async (t) => {
  const users = all(runtime, 'USER')
  const user = users[users.length - 1]?.args.split(':')[0]
  t.ok(user !== undefined && user !== 'root' && user !== '0', `USER is not root (got ${user ?? 'none'})`)
  const env = envOf(runtime ?? { from: '', workdir: '/', instructions: [] })
  t.equal(env.get('NODE_ENV'), 'production')
  t.equal(env.get('PORT'), '3000')
  t.equal(env.get('HOST'), '0.0.0.0')
  t.equal(env.get('NODE_OPTIONS'), PRODUCTION_NODE_OPTIONS, 'the heap flags the benchmark measures (src/runtime.ts)')
  t.ok(all(runtime, 'EXPOSE').some(i => i.args.split(/\s+/).includes('3000')), 'EXPOSE 3000')

  const hc = all(runtime, 'HEALTHCHECK')
  t.equal(hc.length, 1, 'one HEALTHCHECK')
  const hcArgs = hc[0]?.args ?? ''
  t.match(hcArgs, /\bCMD\b/, 'HEALTHCHECK runs a command')
  t.match(hcArgs, /\/healthz\b/, 'HEALTHCHECK hits /healthz')
  t.match(hcArgs, /fetch\(/, 'with node\'s fetch')
  t.notMatch(hcArgs, /\b(curl|wget)\b/, 'no curl/wget (not in the slim image)')
  const hcExec = execForm(hcArgs.replace(/^.*?\bCMD\s+/, ''))
  t.equal(hcExec?.[0], 'node', 'the health check is a node command')

  const cmds = all(runtime, 'CMD')
  t.equal(cmds.length, 1, 'one CMD')
  t.same(execForm(cmds[0]?.args ?? ''), ['node', 'dist/src/server.js'], 'CMD ["node", "dist/src/server.js"] (exec form: node is PID 1 and gets SIGTERM)')
  t.equal(all(runtime, 'ENTRYPOINT').length, 0, 'no ENTRYPOINT wrapping the command')
  t.notMatch([...cmds, ...all(runtime, 'ENTRYPOINT')].map(i => i.args).join(' '), /\bnpm\b/, 'not started through npm')
  const lastUser = users[users.length - 1]?.line ?? Infinity
  t.ok(lastUser < (cmds[0]?.line ?? 0), 'USER comes before CMD')
})

t.test('runtime stage copies only existing build output, package.json and node_modules', async (t) => {
  t.ok(existsSync(path.join(root, 'dist/src/server.js')), 'dist/src/server.js exists (run npm run build first)')
  const copies = [...all(runtime, 'COPY'), ...all(runtime, 'ADD')].map(i => ({ ins: i, copy: parseCopy(i.args) }))
  t.ok(copies.length > 0, 'the runtime stage copies something')
  const copied: string[] = []
  for (const { ins, copy } of copies) {
    t.equal(ins.keyword, 'COPY', `line ${ins.line}: COPY, not ADD`)
    t.equal(copy.from, build?.name ?? '0', `line ${ins.line}: copies from the build stage`)
    for (const src of copy.sources) {
      // a path of the build stage, relative to its WORKDIR = the project root after `npm run build`
      const rel = path.posix.relative(build?.workdir ?? '/', path.posix.resolve(build?.workdir ?? '/', src))
      t.notOk(rel.startsWith('..'), `line ${ins.line}: ${src} is inside the build stage's WORKDIR`)
      t.ok(existsSync(path.join(root, rel)), `line ${ins.line}: ${rel} exists after a build`)
      copied.push(rel.replace(/\/$/, ''))
    }
  }
  t.same(copied.sort(), ['dist', 'node_modules', 'package.json'], 'exactly dist/, node_modules/ and package.json')
  const cmd = execForm(all(runtime, 'CMD')[0]?.args ?? '') ?? []
  const script = cmd[1] ?? ''
  t.ok(copied.some(c => script === c || script.startsWith(`${c}/`)), `the CMD script ${script} is inside a copied path`)
  t.equal(path.posix.resolve(runtime?.workdir ?? '/', 'x'), path.posix.resolve(build?.workdir ?? '/', 'x'), 'same WORKDIR in both stages, so dist/src/server.js resolves')
})

t.test('.dockerignore keeps local artifacts out of the build context', async (t) => {
  const ignored = readFileSync(path.join(root, '.dockerignore'), 'utf8').split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
  for (const p of ['node_modules', 'dist', '.git', '.tap', 'coverage']) t.ok(ignored.includes(p) || ignored.includes(`${p}/`), `${p} is ignored`)
  t.notOk(ignored.some(l => ['package.json', 'package-lock.json', 'src', 'routes', 'tsconfig.json'].includes(l.replace(/\/$/, ''))), 'sources and manifests are not ignored')
})
