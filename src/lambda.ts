/**
 * The gateway as an AWS Lambda handler (API Gateway HTTP API v2 / REST v1 / ALB events) via
 * @fastify/aws-lambda: each event is `inject`ed into the same Fastify app the server runs, no socket.
 *
 * The app (and its Redis/Sentinel connections) is built once per container, on the first
 * invocation, and reused while the container is warm; a failed build is retried on the next one.
 * Values are raw bytes: every response that is not text/JSON (GET's application/octet-stream) goes
 * back base64-encoded with `isBase64Encoded: true`; a base64 request body is decoded before routing.
 * Routing uses the URL as the client encoded it (src/lambda-path.ts: what is exact for which front door).
 */
import awsLambdaFastify, { type LambdaResponse } from '@fastify/aws-lambda'
import type { Context } from 'aws-lambda'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { buildApp } from './app.js'
import { loadConfig, type Config } from './config.js'
import { withExactUrl, type HttpEventShape } from './lambda-path.js'

export type LambdaHandler = (event: unknown, context?: Context) => Promise<LambdaResponse>
export interface LambdaGateway { handler: LambdaHandler; close(): Promise<void> }

const TEXTUAL = /^(?:text\/|application\/(?:[\w.+-]+\+)?json\b|application\/(?:javascript|yaml|xml)\b)/i

/** Base64 unless the body is plain text/JSON and not compressed: bytes must survive API Gateway. */
export function isBinary (res: LightMyRequestResponse): boolean {
  const encoding = res.headers['content-encoding']
  if (encoding !== undefined && encoding !== 'identity') return true
  const type = String(res.headers['content-type'] ?? '')
  return type !== '' && !TEXTUAL.test(type)
}

/** A handler for `config` (a value or a function called on the first invocation) and a way to close its app. */
export function createHandler (config: Config | (() => Config)): LambdaGateway {
  let built: Promise<{ app: FastifyInstance; proxy: LambdaHandler }> | undefined
  const build = async (): Promise<{ app: FastifyInstance; proxy: LambdaHandler }> => {
    const app = await buildApp(typeof config === 'function' ? config() : config)
    // Before ready(): the adapter decorates the request.
    const proxy = awsLambdaFastify(app, { binaryMimeTypes: ['application/octet-stream'], enforceBase64: isBinary }) as LambdaHandler
    await app.ready()
    return { app, proxy }
  }
  const handler: LambdaHandler = async (event, context) => {
    built ??= build().catch((err: unknown) => { built = undefined; throw err })
    const { proxy } = await built
    const exact = typeof event === 'object' && event !== null ? withExactUrl(event as HttpEventShape) : event
    return await proxy(exact, context ?? ({} as Context))
  }
  const close = async (): Promise<void> => {
    const b = built
    built = undefined
    await b?.then(async ({ app }) => { await app.close() }, () => {})
  }
  return { handler, close }
}

/** The gateway built from the function's environment (`close` is for tests; Lambda never calls it). */
export const gateway: LambdaGateway = createHandler(() => loadConfig(process.env))
/** The Lambda entry point: handler `dist/src/lambda.handler`. */
export const handler: LambdaHandler = gateway.handler
