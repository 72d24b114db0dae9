/**
 * Checks recorded answers (test/helpers/answer-recorder.ts) against openapi.yaml: each answer of a
 * documented operation has a documented status, content type and body schema (no body when none is
 * documented), its documented headers match their schemas, and it carries X-Request-Id. Answers of
 * routes the document does not describe (/docs assets, a 404 for an unknown route, a 405) must still
 * be the Error (or, on the Upstash routes, the UpstashError) shape when they are errors.
 *
 *   node dist/test/helpers/check-answers.js <dir>    exits 1 and lists the mismatches, if any
 */
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js'
import { parse } from 'yaml'
import type { RecordedAnswer } from './answer-recorder.js'

type Schema = Record<string, unknown>
interface Header { schema?: Schema; $ref?: string }
interface Response { headers?: Record<string, Header>; content?: Record<string, { schema?: Schema }> }
interface Doc { paths: Record<string, Record<string, { responses: Record<string, Response> }>>; components?: { schemas?: Record<string, Schema>; headers?: Record<string, Header> } }

export interface CheckReport { answers: number; documented: number; undocumented: number; mismatches: string[] }

/** Path of openapi.yaml at the project root, from test/helpers or dist/test/helpers. */
export function openapiFile (): string {
  const here = fileURLToPath(new URL('../../', import.meta.url))
  return path.join(path.basename(here) === 'dist' ? path.dirname(here) : here, 'openapi.yaml')
}

/** Reads every `<dir>/*.jsonl` recording. */
export function readRecordings (dir: string): RecordedAnswer[] {
  return readdirSync(dir).filter(f => f.endsWith('.jsonl')).flatMap(f =>
    readFileSync(path.join(dir, f), 'utf8').split('\n').filter(l => l !== '').map(l => JSON.parse(l) as RecordedAnswer))
}

/** Checks `answers` against the OpenAPI document `yamlText`. */
export function checkAnswers (answers: RecordedAnswer[], yamlText: string): CheckReport {
  const doc = parse(yamlText) as Doc
  const ajv = new Ajv2020({ strict: false, allErrors: true })
  ajv.addFormat('binary', true)
  for (const [name, schema] of Object.entries(doc.components?.schemas ?? {})) ajv.addSchema(schema, `#/components/schemas/${name}`)
  const headerAjv = new Ajv2020({ strict: false, coerceTypes: true })
  const compiled = new Map<Schema, ValidateFunction>()
  const validator = (schema: Schema, a: Ajv2020 = ajv): ValidateFunction => {
    let v = compiled.get(schema)
    if (v === undefined) { v = a.compile(schema); compiled.set(schema, v) }
    return v
  }
  const errorShapes = [{ $ref: '#/components/schemas/Error' }, { $ref: '#/components/schemas/UpstashError' }].filter(s => doc.components?.schemas?.[s.$ref.split('/').pop()!] !== undefined)
  // A Fastify route pattern and a documented path compare with every parameter as `*`.
  const byPattern = new Map(Object.keys(doc.paths).map(p => [p.replace(/\{[^}]+\}/g, '*'), p]))
  const report: CheckReport = { answers: answers.length, documented: 0, undocumented: 0, mismatches: [] }

  for (const a of answers) {
    const docPath = a.route === null ? undefined : byPattern.get(a.route.replace(/:[^/]+/g, '*'))
    const at = `${a.method} ${docPath ?? a.route ?? '(no route)'} -> ${a.status}`
    const fail = (problem: string): void => { report.mismatches.push(`${at}: ${problem}`) }
    const body = a.body === null ? null : Buffer.from(a.body, 'base64')
    const op = docPath === undefined ? undefined : doc.paths[docPath]?.[a.method.toLowerCase()]
    if (op === undefined) {
      report.undocumented++
      if (a.status >= 400 && body !== null && body.length > 0) {
        let json: unknown
        try { json = JSON.parse(body.toString('utf8')) } catch { fail(`an error that is not JSON: ${body.toString('utf8').slice(0, 80)}`); continue }
        if (!errorShapes.some(s => validator(s)(json))) fail(`an error outside the Error shape: ${body.toString('utf8').slice(0, 120)}`)
      }
      continue
    }
    report.documented++
    const documented = op.responses[String(a.status)]
    if (documented === undefined) { fail(`status not documented (documented: ${Object.keys(op.responses).join(', ')})`); continue }
    if (a.headers['x-request-id'] === undefined) fail('no X-Request-Id')
    for (const [name, h] of Object.entries(documented.headers ?? {})) {
      const header = h.$ref === undefined ? h : doc.components?.headers?.[h.$ref.split('/').pop()!]
      const value = a.headers[name.toLowerCase()]
      if (value === undefined || header?.schema === undefined) continue
      const v = validator({ type: 'object', properties: { v: header.schema } }, headerAjv)
      if (!v({ v: value })) fail(`header ${name}: ${value} does not match ${JSON.stringify(header.schema)}`)
    }
    if (body === null) continue // HEAD, a stream, or a body too large to record
    if (documented.content === undefined) {
      if (body.length > 0) fail(`a body where none is documented: ${body.toString('utf8').slice(0, 80)}`)
      continue
    }
    const essence = (a.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
    const media = Object.keys(documented.content).find(k => k === '*/*' || k.toLowerCase() === essence || (k.endsWith('/*') && essence.startsWith(k.slice(0, -1))))
    if (media === undefined) { fail(`content type ${essence || '(none)'} not documented (${Object.keys(documented.content).join(', ')})`); continue }
    const schema = documented.content[media]?.schema
    if (schema === undefined || !/^application\/(.+\+)?json$/.test(essence)) continue
    let json: unknown
    try { json = JSON.parse(body.toString('utf8')) } catch { fail('the body is not JSON'); continue }
    const v = validator(schema)
    if (!v(json)) fail(`the body does not match its schema: ${ajv.errorsText(v.errors)}; body ${body.toString('utf8').slice(0, 160)}`)
  }
  return report
}

async function main (argv: string[]): Promise<number> {
  const dir = argv[0]
  if (dir === undefined) { process.stderr.write('usage: node dist/test/helpers/check-answers.js <dir>\n'); return 2 }
  const r = checkAnswers(readRecordings(dir), readFileSync(openapiFile(), 'utf8'))
  process.stdout.write(`${r.answers} answers: ${r.documented} of documented operations, ${r.undocumented} of routes the document does not describe; ${r.mismatches.length} mismatches\n`)
  const counts = new Map<string, number>()
  for (const m of r.mismatches) counts.set(m, (counts.get(m) ?? 0) + 1)
  for (const [m, n] of [...counts].slice(0, 100)) process.stdout.write(`  ${n} x ${m}\n`)
  return r.mismatches.length === 0 ? 0 : 1
}

const entry = process.argv[1]
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  main(process.argv.slice(2)).then(code => { process.exitCode = code }, (err: unknown) => {
    process.stderr.write(`check-answers: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    process.exitCode = 1
  })
}
