/**
 * The answer recorder and its checker (test/helpers/answer-recorder.ts, check-answers.ts), which
 * check every answer of a whole test run against openapi.yaml when SKV_RECORD_ANSWERS is set: what
 * a gateway answers is recorded and passes, and an answer that breaks the document is reported.
 * (The gateway here fronts sentinels that do not answer: 503s, 4xx and the probes, no Redis needed.)
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { recordAnswers, type RecordedAnswer } from './helpers/answer-recorder.js'
import { checkAnswers, openapiFile, readRecordings } from './helpers/check-answers.js'
import { freePorts } from './helpers/topology-procs.js'

const dir = mkdtempSync(path.join(os.tmpdir(), 'skv-answers-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const spec = readFileSync(openapiFile(), 'utf8')

const [deadPort] = await freePorts(1)
const app = await buildApp(loadConfig({
  REDIS_SENTINELS: `127.0.0.1:${deadPort}`, LOG_LEVEL: 'silent', REQUEST_RETRY_BUDGET_MS: '200', REDIS_CONNECT_TIMEOUT_MS: '100', EVENT_LOOP_MAX_DELAY_MS: '0'
}))
recordAnswers(app, dir)
t.teardown(async () => await app.close())
const url = await app.listen({ host: '127.0.0.1', port: 0 })

t.test('what the gateway answers is recorded and matches the document', async t => {
  const json = { 'content-type': 'application/json' }
  const requests: Array<[string, string, RequestInit?]> = [
    ['GET', '/healthz'], ['GET', '/readyz'], ['GET', '/topology'], ['GET', '/kv/k'], ['HEAD', '/kv/k'],
    ['PUT', '/kv/k', { body: 'v' }], ['DELETE', '/kv/k'], ['GET', '/kv/k?consistency=sometimes'],
    ['POST', '/kv/_batch', { headers: json, body: '{"ops":[]}' }], ['POST', '/kv/_batch', { headers: { 'content-type': 'text/plain' }, body: '{}' }],
    ['PATCH', '/kv/k', { body: 'v' }], ['GET', '/no/such/route'], ['GET', '/docs/static/no-such-file.js'], ['GET', '/openapi.json']
  ]
  for (const [method, p, init] of requests) await (await fetch(`${url}${p}`, { method, ...init })).arrayBuffer()
  const answers = readRecordings(dir)
  t.equal(answers.length, requests.length, 'one record per answer')
  t.same(answers.map(a => `${a.method} ${a.status}`), ['GET 200', 'GET 503', 'GET 200', 'GET 503', 'HEAD 503', 'PUT 503', 'DELETE 503', 'GET 400', 'POST 400', 'POST 415', 'PATCH 405', 'GET 404', 'GET 404', 'GET 200'])
  const report = checkAnswers(answers, spec)
  t.same(report.mismatches, [], 'every recorded answer matches openapi.yaml')
  t.equal(report.documented, 10, 'answers of documented operations were checked against them')
  t.equal(report.undocumented, 4, 'the others (405, unknown route, /docs asset, /openapi.json) only for the error shape')
})

t.test('an answer that breaks the document is reported', async t => {
  const base: RecordedAnswer = { method: 'GET', route: '/kv/:key', status: 404, headers: { 'x-request-id': 'r', 'content-type': 'application/json' }, body: null, bodyLength: null }
  const body = (x: unknown): string => Buffer.from(JSON.stringify(x)).toString('base64')
  const bad: RecordedAnswer[] = [
    { ...base, status: 418 },
    { ...base, body: body({ error: 'not the gateway shape' }) },
    { ...base, headers: { 'content-type': 'application/json' }, body: body({ error: { code: 'GW_ERR_KEY_NOT_FOUND', message: 'm' } }) },
    { ...base, method: 'DELETE', status: 204, body: body(null) },
    { ...base, status: 200, headers: { 'x-request-id': 'r', 'x-served-by': 'somewhere', 'content-type': 'application/octet-stream' }, body: '' },
    { ...base, method: 'PATCH', status: 405, headers: { 'content-type': 'text/plain' }, body: Buffer.from('Method Not Allowed').toString('base64') }
  ]
  const report = checkAnswers(bad, spec)
  t.equal(report.mismatches.length, bad.length, 'each one is reported', { mismatches: report.mismatches })
  t.match(report.mismatches.join('\n'), /status not documented[\s\S]*does not match its schema[\s\S]*no X-Request-Id[\s\S]*a body where none is documented[\s\S]*header x-served-by[\s\S]*not JSON/)
})
