/**
 * Replaying a command through every encoding of the Upstash endpoint (JSON body POST /, path form
 * GET /cmd/a/b, POST /pipeline, POST /multi-exec) and asserting the error contract of the team
 * brief: 400 `ERR ...` for a command outside the allowlist, 403 `NOPERM ...` for a missing right
 * or a key/channel outside the token's reach, `{"error": ...}` only; in a pipeline each refused
 * command answers its own `{"error"}` entry with HTTP 200; a transaction is refused as a whole.
 */
import type { Asserter } from './security.js'

export type Route = 'single' | 'path' | 'pipeline' | 'multi'
export const ROUTES: readonly Route[] = ['single', 'path', 'pipeline', 'multi']
/** Routes that carry any argument (the path form cannot carry an empty segment). */
export const JSON_ROUTES: readonly Route[] = ['single', 'pipeline', 'multi']

export interface Outcome {
  route: Route
  status: number
  /** The parsed body (undefined when not JSON). */
  body: unknown
  text: string
  ms: number
  /** The command's own answer: the body, or a pipeline's / transaction's first entry. */
  entry: { result?: unknown; error?: unknown } | undefined
}

export interface SendOptions {
  headers?: Record<string, string>
  /** Client-side bound of the request (default 15 s). */
  timeoutMs?: number
  /** For the path form: use POST with this raw body (appended after the segments). */
  body?: Buffer
}

/** `/cmd/arg1/arg2` with every segment percent-encoded. */
export const pathOf = (cmd: readonly string[]): string => `/${cmd.map(a => encodeURIComponent(a)).join('/')}`

/** Sends `cmd` through `route` with `token` (undefined: no Authorization header). Never throws for an HTTP answer. */
export async function send (base: string, token: string | undefined, route: Route, cmd: readonly string[], opts: SendOptions = {}): Promise<Outcome> {
  const headers: Record<string, string> = { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...(opts.headers ?? {}) }
  let path = '/'
  let method = 'POST'
  let body: RequestInit['body']
  if (route === 'path') {
    path = pathOf(cmd)
    method = opts.body === undefined ? 'GET' : 'POST'
    if (opts.body !== undefined) body = new Uint8Array(opts.body)
  } else {
    headers['content-type'] ??= 'application/json'
    if (route === 'single') body = JSON.stringify(cmd)
    else { path = route === 'pipeline' ? '/pipeline' : '/multi-exec'; body = JSON.stringify([cmd]) }
  }
  const started = performance.now()
  const res = await fetch(base + path, { method, headers, ...(body === undefined ? {} : { body }), signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000) })
  const text = await res.text()
  const ms = performance.now() - started
  let parsed: unknown
  try { parsed = JSON.parse(text) } catch { parsed = undefined }
  const entry = (Array.isArray(parsed) ? parsed[0] : parsed) as Outcome['entry']
  return { route, status: res.status, body: parsed, text, ms, entry }
}

/** Which answer a refusal must have: 400 ERR, 403 NOPERM, or either (a refused command some token may still reach). */
export type Refusal = 400 | 403 | 'any'

const prefixOf = (status: number): string => status === 403 ? 'NOPERM' : 'ERR'

/**
 * What is wrong with `o` as a refusal of kind `want` (empty when it is one):
 * single/path/multi answer `want` with exactly `{"error": "<ERR|NOPERM> ..."}`; a pipeline answers
 * 200 with exactly one entry `{"error": ...}` whose prefix says the same.
 */
export function refusalProblems (o: Outcome, want: Refusal): string[] {
  const out: string[] = []
  const statuses = want === 'any' ? [400, 403] : [want]
  const shape = (v: unknown, where: string): string | undefined => {
    const ok = v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).join() === 'error' && typeof (v as { error: unknown }).error === 'string'
    if (!ok) { out.push(`${where} is not exactly {"error": "..."}: ${o.text.slice(0, 200)}`); return undefined }
    return (v as { error: string }).error
  }
  if (o.route === 'pipeline') {
    if (o.status !== 200) out.push(`pipeline answered HTTP ${o.status}, not 200 with an error entry: ${o.text.slice(0, 200)}`)
    if (!Array.isArray(o.body) || o.body.length !== 1) { out.push(`pipeline body is not one entry: ${o.text.slice(0, 200)}`); return out }
    const msg = shape(o.body[0], 'the pipeline entry')
    if (msg !== undefined && !statuses.some(s => msg.startsWith(prefixOf(s)))) out.push(`pipeline entry ${JSON.stringify(msg.slice(0, 160))} does not start with ${statuses.map(prefixOf).join(' or ')}`)
    return out
  }
  if (!statuses.includes(o.status as 400 | 403)) out.push(`HTTP ${o.status}, not ${statuses.join(' or ')}: ${o.text.slice(0, 200)}`)
  const msg = shape(o.body, 'the body')
  if (msg !== undefined && statuses.includes(o.status as 400 | 403) && !msg.startsWith(prefixOf(o.status))) {
    out.push(`message ${JSON.stringify(msg.slice(0, 160))} does not start with ${prefixOf(o.status)}`)
  }
  return out
}

/**
 * Refused in any way: a gateway refusal (400/403 `{"error"}`, a pipeline's error entry), or a
 * Redis error at run time, which a transaction answers as its command's `{"error"}` entry with
 * HTTP 200 (e.g. a script whose inner call Redis ACL refuses inside EXEC).
 */
export function refusedSomehow (o: Outcome): boolean {
  if (refusalProblems(o, 'any').length === 0) return true
  const e = o.entry as Record<string, unknown> | undefined
  return o.route === 'multi' && o.status === 200 && Array.isArray(o.body) && o.body.length === 1 && e !== undefined && e !== null && Object.keys(e).join() === 'error'
}

/** Label of one replay in assertion messages. */
export const label = (token: string, o: { route: Route }, cmd: readonly string[]): string =>
  `${token} ${o.route} ${JSON.stringify(cmd.map(a => a.length > 60 ? `${a.slice(0, 60)}...` : a))}`

/**
 * Replays `cmd` with `token` through each of `routes` and asserts each answer is the refusal `want`.
 * Returns the outcomes (e.g. to look at timings).
 */
export async function expectRefused (t: Asserter, base: string, tokenName: string, token: string | undefined, cmd: readonly string[], want: Refusal, routes: readonly Route[] = ROUTES, opts: SendOptions = {}): Promise<Outcome[]> {
  const outcomes: Outcome[] = []
  for (const route of routes) {
    const o = await send(base, token, route, cmd, opts)
    outcomes.push(o)
    t.same(refusalProblems(o, want), [], `${label(tokenName, o, cmd)} is refused ${want === 'any' ? '(400 or 403)' : want}`)
  }
  return outcomes
}

/** Asserts that `o` succeeded (HTTP 200 and a `result`, for a pipeline/transaction in its first entry). */
export function expectAnswered (t: Asserter, o: Outcome, what: string): boolean {
  const ok = o.status === 200 && o.entry !== undefined && o.entry !== null && 'result' in o.entry
  t.ok(ok, `${what}: answered 200 with a result (got ${o.status} ${o.text.slice(0, 160)})`)
  return ok
}
