/**
 * openapi.yaml passes the two linters API readers run on it, offline: Redocly's recommended ruleset
 * (.redocly.lint-ignore.yaml lists what it flags on purpose, with why) and Spectral's `oas` ruleset
 * (.spectral.yaml). No error and no warning from either.
 */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = fileURLToPath(new URL('../', import.meta.url).href.replace(/\/dist\/$/, '/'))
const bin = (name: string): string => fileURLToPath(new URL(`node_modules/.bin/${name}`, `file://${root}`))
// No network: no telemetry, no update check.
const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_UPDATE_NOTIFIER: '1', CI: 'true' }

async function run (cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return await new Promise(resolve => {
    execFile(cmd, args, { cwd: root, env, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

t.test('Redocly (recommended ruleset): no error, no warning', async t => {
  const r = await run(bin('redocly'), ['lint', 'openapi.yaml', '--format=json'])
  let report: { totals?: { errors: number; warnings: number; ignored: number }; problems?: Array<{ ruleId: string; severity: string; message: string; location?: Array<{ pointer?: string }> }> } = {}
  try { report = JSON.parse(r.stdout) } catch { t.fail(`redocly did not answer JSON (exit ${r.code}): ${r.stdout.slice(0, 500)} ${r.stderr.slice(-1000)}`) }
  const problems = (report.problems ?? []).map(p => `${p.severity} ${p.ruleId} at ${p.location?.[0]?.pointer ?? '?'}: ${p.message}`)
  t.equal(report.totals?.errors, 0, 'no error', { problems })
  t.equal(report.totals?.warnings, 0, 'no warning', { problems })
  t.equal(r.code, 0, 'redocly lint exits 0')
})

t.test('Spectral (spectral:oas): no error, no warning', async t => {
  const r = await run(bin('spectral'), ['lint', 'openapi.yaml', '--ruleset', '.spectral.yaml', '--format', 'json', '--fail-severity', 'warn'])
  let results: Array<{ code: string; severity: number; message: string; path: string[] }> = []
  // The JSON array, then (on the same stream) a one-line summary.
  try { results = JSON.parse(r.stdout.slice(r.stdout.indexOf('['), r.stdout.lastIndexOf(']') + 1)) } catch { t.fail(`spectral did not answer JSON (exit ${r.code}): ${r.stdout.slice(0, 500)} ${r.stderr.slice(-1000)}`) }
  const shown = results.map(x => `${['error', 'warning', 'info', 'hint'][x.severity] ?? x.severity} ${x.code} at ${x.path.join('.')}: ${x.message}`)
  t.same(shown.filter(x => x.startsWith('error')), [], 'no error')
  t.same(shown.filter(x => x.startsWith('warning')), [], 'no warning')
  t.equal(r.code, 0, 'spectral lint exits 0 (fails on warnings)')
})
