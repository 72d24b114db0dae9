/**
 * Records every answer of the in-process gateways of a test run, to check them all against
 * openapi.yaml afterwards (test/helpers/check-answers.ts). Off unless SKV_RECORD_ANSWERS names a
 * directory: each test process appends one JSON line per answer to `<dir>/<pid>.jsonl`.
 *
 *   npm test does this: SKV_RECORD_ANSWERS=.answers tap && node dist/test/helpers/check-answers.js .answers
 */
import { appendFileSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'

/** One recorded answer. `route`: Fastify's route pattern (null when no route matched). */
export interface RecordedAnswer {
  method: string
  route: string | null
  status: number
  headers: Record<string, string>
  /** The body, base64 (at most MAX_BODY bytes); null for a stream or a HEAD. */
  body: string | null
  bodyLength: number | null
}

const MAX_BODY = 256 * 1024

/** Adds the recording hook to `app` when SKV_RECORD_ANSWERS is set (before it listens). */
export function recordAnswers (app: FastifyInstance, dir = process.env.SKV_RECORD_ANSWERS): void {
  if (dir === undefined || dir === '') return
  mkdirSync(dir, { recursive: true })
  const file = path.join(dir, `${process.pid}.jsonl`)
  app.addHook('onSend', (req, reply, payload, done) => {
    const bytes = typeof payload === 'string' ? Buffer.from(payload) : Buffer.isBuffer(payload) ? payload : null
    const body = req.method === 'HEAD' || (bytes === null && payload !== null && payload !== undefined) ? null : (bytes ?? Buffer.alloc(0))
    const headers = Object.fromEntries(Object.entries(reply.getHeaders()).map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? v.join(', ') : String(v)]))
    const answer: RecordedAnswer = {
      method: req.method,
      route: req.routeOptions.url ?? null,
      status: reply.statusCode,
      headers,
      body: body === null || body.length > MAX_BODY ? null : body.toString('base64'),
      bodyLength: body === null ? null : body.length
    }
    appendFileSync(file, JSON.stringify(answer) + '\n')
    done()
  })
}
