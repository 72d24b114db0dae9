/**
 * Prints the README's configuration table from src/config.ts; `--write` replaces it in README.md.
 * test/readme.test.ts checks that the README holds it verbatim.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { configTableMarkdown } from '../src/config.js'

const table = configTableMarkdown()
if (process.argv.includes('--write')) {
  const readme = readFileSync('README.md', 'utf8')
  const start = readme.indexOf('| Variable | Default | Meaning |')
  if (start < 0) throw new Error('README.md has no configuration table to replace')
  const end = readme.indexOf('\n\n', start)
  writeFileSync('README.md', readme.slice(0, start) + table + (end < 0 ? '\n' : readme.slice(end)))
} else {
  console.log(table)
}
