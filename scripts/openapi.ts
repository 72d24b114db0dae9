// openapi.yaml, generated from the route schemas (the one source of truth) through @fastify/swagger.
//   node dist/scripts/openapi.js            prints the document
//   node dist/scripts/openapi.js --write    writes <project root>/openapi.yaml   (npm run openapi)
//   node dist/scripts/openapi.js --check    exits 1 when <project root>/openapi.yaml is not current
// The app is built offline (no Redis connection) from a fixed dummy configuration, so the output
// depends only on the code, never on the environment.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'

/** Prepended to the generated YAML (a fixed string, so the output stays deterministic). */
export const HEADER = '# Generated from the route schemas by scripts/openapi.ts: do not edit by hand, run `npm run openapi`.\n'

/** Configuration used only to build the app; nothing connects to these addresses. */
const DUMMY_ENV = { REDIS_SENTINELS: '127.0.0.1:1,127.0.0.1:2,127.0.0.1:3', LOG_LEVEL: 'silent' }

/** Path of openapi.yaml at the project root, whether this file runs from scripts/ or dist/scripts/. */
export function openapiPath (): string {
  const here = new URL('../', import.meta.url)
  const root = here.href.endsWith('/dist/') ? new URL('../', here) : here
  return fileURLToPath(new URL('openapi.yaml', root))
}

/** The OpenAPI 3.1 document of the gateway as YAML (exactly what `--write` stores). */
export async function generateOpenApiYaml (): Promise<string> {
  const app = await buildApp(loadConfig(DUMMY_ENV), { offline: true })
  try {
    await app.ready()
    return HEADER + app.swagger({ yaml: true })
  } finally {
    await app.close()
  }
}

/** First line where `a` and `b` differ (1-based), for the --check message. */
function firstDifference (a: string, b: string): { line: number; committed: string; generated: string } {
  const la = a.split('\n')
  const lb = b.split('\n')
  for (let i = 0; i < Math.max(la.length, lb.length); i++) {
    if (la[i] !== lb[i]) return { line: i + 1, committed: la[i] ?? '(end of file)', generated: lb[i] ?? '(end of file)' }
  }
  return { line: 0, committed: '', generated: '' }
}

async function main (argv: string[]): Promise<number> {
  const mode = argv[0]
  if (argv.length > 1 || (mode !== undefined && mode !== '--write' && mode !== '--check')) {
    process.stderr.write('usage: node dist/scripts/openapi.js [--write | --check]\n')
    return 2
  }
  const yaml = await generateOpenApiYaml()
  const file = openapiPath()
  if (mode === undefined) {
    process.stdout.write(yaml)
    return 0
  }
  if (mode === '--write') {
    writeFileSync(file, yaml)
    process.stdout.write(`wrote ${file}\n`)
    return 0
  }
  let committed: string
  try {
    committed = readFileSync(file, 'utf8')
  } catch {
    process.stderr.write(`${file} is missing: run \`npm run openapi\` and commit it\n`)
    return 1
  }
  if (committed === yaml) {
    process.stdout.write(`${file} is up to date\n`)
    return 0
  }
  const d = firstDifference(committed, yaml)
  process.stderr.write(`${file} is out of date with the route schemas: run \`npm run openapi\` and commit it\n` +
    `  first difference at line ${d.line}:\n    committed: ${d.committed}\n    generated: ${d.generated}\n`)
  return 1
}

const entry = process.argv[1]
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code }, (err: unknown) => {
    process.stderr.write(`openapi: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    process.exitCode = 1
  })
}
