/**
 * The operations page: GET /ui (public: the page itself holds nothing, it asks for a token),
 * its scripts and stylesheet (public, served from memory), and GET /ui/events, the live feed
 * (Server-Sent Events), which needs the ops right (`o`) when tokens are configured.
 * Hidden from openapi.yaml: a page for people, not an API.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { errorBody } from '../src/errors.js'
import { MAX_PAGES, OpsFeed } from '../src/ui/feed.js'
import { FAVICON_SVG, PAGE_CSS, PAGE_HTML } from '../src/ui/page-html.js'

/**
 * The page's own policy (the API's, src/plugins/security.ts, allows no script and no fetch):
 * its scripts, its stylesheet and its own event stream, from this origin only; nothing inline.
 */
export const PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

interface Asset { type: string; body: string }

/** The compiled page scripts (dist/src/ui/page/*.js), whether this file runs from routes/ or dist/routes/. */
function pageScripts (): Map<string, Asset> {
  const here = new URL('../', import.meta.url)
  const dist = here.href.endsWith('/dist/') ? here : new URL('dist/', here)
  const dir = fileURLToPath(new URL('src/ui/page/', dist))
  const out = new Map<string, Asset>()
  let names: string[] = []
  try { names = readdirSync(dir) } catch { /* not built: /ui answers 500 saying so */ }
  for (const name of names) {
    if (!name.endsWith('.js')) continue
    // Source map comments point at files not served: drop them (no 404 in the browser's console).
    const body = readFileSync(`${dir}/${name}`, 'utf8').replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n')
    out.set(name, { type: 'text/javascript; charset=utf-8', body })
  }
  return out
}

const routes: FastifyPluginAsync = async (app) => {
  const feed = new OpsFeed({
    topology: app.topology,
    cluster: app.cluster,
    breakers: app.breakers,
    router: app.router,
    near: app.near,
    cache: app.near?.cache,
    gatewayConfig: app.gatewayConfig,
    registry: app.metrics.registry,
    log: app.log
  })
  // Open streams would hold app.close() until the browsers go: end them first.
  app.addHook('preClose', async () => feed.close())
  app.addHook('onClose', async () => feed.close())

  const assets = pageScripts()
  assets.set('ui.css', { type: 'text/css; charset=utf-8', body: PAGE_CSS })
  assets.set('favicon.svg', { type: 'image/svg+xml', body: FAVICON_SVG })
  const built = assets.has('main.js')
  if (!built) app.log.warn('operations page: dist/src/ui/page/main.js not found (run npm run build): /ui answers 500')

  const html = PAGE_HTML.replace('{{AUTH}}', app.auth.open ? 'open' : 'token')
  const page = (reply: FastifyReply, type: string, body: string): FastifyReply =>
    reply.header('content-security-policy', PAGE_CSP).header('cache-control', 'no-cache').type(type).send(body)
  // Served from memory and cheap: not counted by the rate limiter (a page load is a dozen files).
  const publicRoute = { config: { public: true, rateLimit: false as const }, schema: { hide: true } }

  app.get('/ui', publicRoute, async (_req, reply) => built
    ? page(reply, 'text/html; charset=utf-8', html)
    : reply.code(500).send(errorBody('GW_ERR_INTERNAL', 'the operations page is not built (npm run build)')))

  app.get<{ Params: { file: string } }>('/ui/:file', publicRoute, async (req, reply) => {
    const asset = assets.get(req.params.file)
    if (asset === undefined) return await reply.code(404).send(errorBody('GW_ERR_NOT_FOUND', `no route for GET ${req.url.split('?')[0]}`))
    return page(reply, asset.type, asset.body)
  })

  app.get('/ui/events', { onRequest: app.requireRight('ops'), schema: { hide: true } }, (req, reply) => {
    if (!feed.accepting) {
      void reply.code(503).header('retry-after', 10).send(errorBody('GW_ERR_OVERLOADED', `${MAX_PAGES} operations pages are connected to this process already`))
      return
    }
    reply.hijack()
    // Headers set so far (request id, security headers, CORS) go out with the stream's own.
    const set = Object.entries(reply.getHeaders()).filter((e): e is [string, string | number | string[]] => e[1] !== undefined)
    reply.raw.writeHead(200, {
      ...Object.fromEntries(set),
      'content-security-policy': PAGE_CSP,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // A buffering proxy (nginx) would hold the events back.
      'x-accel-buffering': 'no',
      // The stream is the connection's last answer: when it ends (shutdown), the socket closes too.
      connection: 'close'
    })
    req.log.info({ clients: feed.clients + 1 }, 'operations page connected')
    feed.attach(reply.raw)
  })
}

export default routes
