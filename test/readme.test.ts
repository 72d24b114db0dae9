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

/** The ```sh blocks of the README. */
const shellBlocks = [...readme.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map(m => m[1] ?? '')

t.test('every URL with ? * or [ in a shell example is quoted (zsh would expand it)', async t => {
  t.ok(shellBlocks.length > 3, 'the README has shell examples')
  for (const block of shellBlocks) {
    for (const line of block.split('\n')) {
      const code = line.replace(/\s#\s.*$/, '')
      const unquoted = code.replace(/'[^']*'|"(?:[^"\\]|\\.)*"/g, '')
      t.notMatch(unquoted, /(?:localhost|127\.0\.0\.1|https?:\/\/)\S*[?*[]/, `quoted: ${line.trim().slice(0, 100)}`)
    }
  }
})

t.test('the Quick start names every system package .ci/run installs, and how to use a browser elsewhere', async t => {
  const ci = readFileSync(new URL('../.ci/run', import.meta.url), 'utf8')
  const packages = [...ci.matchAll(/need_apt\+=\(([\w-]+)\)/g)].map(m => m[1] ?? '')
  t.ok(packages.length >= 6, `.ci/run installs ${packages.join(' ')}`)
  const quickStart = readme.slice(readme.indexOf('## Quick start'), readme.indexOf('\n## ', readme.indexOf('## Quick start') + 1))
  const apt = /apt-get install -y ([^\n]+)/.exec(quickStart)?.[1]?.split(/\s+/) ?? []
  for (const p of packages) t.ok(apt.includes(p), `the Quick start's apt-get line installs ${p}`)
  t.match(quickStart, /CHROMIUM_PATH=/, 'says how to point the browser tests at another Chromium')
  const helper = readFileSync(new URL('./helpers/browser.ts', import.meta.url), 'utf8')
  t.match(helper, /process\.env\.CHROMIUM_PATH/, 'and the browser helper reads CHROMIUM_PATH')
  t.match(quickStart, /npm test` takes about \d+ minutes/, 'says how long npm test takes')
  t.match(quickStart, /PORT=\d+ npm run demo/, 'says how to run the demo on another port')
})

t.test('every link to a section of the README names a heading that exists', async t => {
  /** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes. */
  const slug = (h: string): string => h.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
  const anchors = new Set([...readme.matchAll(/^#{1,6} (.+)$/gm)].map(m => slug(m[1] ?? '')))
  const links = [...readme.matchAll(/\]\(#([^)]+)\)/g)].map(m => m[1] ?? '')
  t.ok(links.length > 10, `${links.length} section links`)
  for (const link of new Set(links)) t.ok(anchors.has(link), `#${link} is a heading`)
})
