// The README stays true to the code: configuration table, error codes, first-screen commands.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { configTableMarkdown } from '../src/config.js'
import { ERROR_CODES } from '../src/errors.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

t.test('the configuration table is the one generated from the config module', async t => {
  t.ok(readme.includes(configTableMarkdown()), 'README must contain configTableMarkdown() verbatim (regenerate the table)')
})

t.test('every error code is documented with its status', async t => {
  for (const [code, status] of Object.entries(ERROR_CODES)) {
    const row = readme.split('\n').find(l => l.startsWith(`| ${status} |`) && l.includes(`\`${code}\``))
    t.ok(row, `${code} (${status}) has a row in the errors table`)
  }
})

t.test('the first screen holds the demo and test commands, and .ci/run runs the same test command', async t => {
  const firstScreen = readme.split('\n').slice(0, 40).join('\n')
  t.match(firstScreen, /npm ci && npm run demo/)
  t.match(firstScreen, /^npm test\b/m)
  const ci = readFileSync(new URL('../.ci/run', import.meta.url), 'utf8')
  t.match(ci, /^npm test$/m)
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> }
  t.ok(pkg.scripts.demo, 'npm run demo exists')
})
