/**
 * The operations page's HTML and stylesheet. Kept as strings in a module (not files beside it) so
 * they reach dist/ with the compiled scripts: the image copies dist/ only. No inline script or
 * style anywhere: the page runs under a CSP with `script-src 'self'; style-src 'self'`.
 */

/**
 * GET /ui. `{{AUTH}}`: `token` when tokens are configured (the page asks for one before
 * connecting, instead of provoking a 401 first), `open` otherwise. Any client learns that much
 * from any route's answer.
 */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="skv-auth" content="{{AUTH}}">
<title>Sentinel KV gateway · operations</title>
<link rel="icon" href="/ui/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/ui/ui.css">
<script type="module" src="/ui/main.js"></script>
</head>
<body>
<a class="skip" href="#main">Skip to the page</a>
<header class="top">
  <h1>Sentinel KV gateway <span class="sub">operations</span></h1>
  <p id="status" role="status" data-state="connecting">Connecting…</p>
  <p id="worker" class="muted"></p>
  <p id="updated" class="muted"></p>
  <button id="forget" type="button" hidden>Forget token</button>
</header>
<main id="main">
  <section id="login" class="card" hidden aria-labelledby="login-h">
    <h2 id="login-h">Token</h2>
    <form id="login-form">
      <label for="token">A token with the operations right (<code>o</code>)</label>
      <input id="token" name="token" type="password" autocomplete="off" spellcheck="false" required>
      <button type="submit">Open the page</button>
      <p id="login-error" class="bad-text" role="alert"></p>
    </form>
    <p class="muted">Kept for this tab only (sessionStorage) and sent as an Authorization header, never in a URL.</p>
  </section>
  <div id="live" hidden>
    <section class="card deployment" aria-labelledby="dep-h">
      <h2 id="dep-h">Deployment: <span id="dep-kind">master</span> <span id="master-name">unknown</span></h2>
      <p id="summary"></p>
      <div id="picture" class="picture-wrap" tabindex="0" role="region" aria-label="Deployment picture"></div>
      <div id="shards-wrap" class="table-wrap" tabindex="0" role="region" aria-labelledby="shards-caption" hidden>
        <table>
          <caption id="shards-caption">Shards (Redis Cluster)</caption>
          <thead><tr><th scope="col">Shard</th><th scope="col">Slots</th><th scope="col">Master</th><th scope="col">Replicas</th><th scope="col">WAIT count</th><th scope="col">Writes</th><th scope="col">Last failover</th></tr></thead>
          <tbody id="shards-body"></tbody>
        </table>
      </div>
      <div class="table-wrap" tabindex="0" role="region" aria-labelledby="nodes-caption">
        <table>
          <caption id="nodes-caption">Data nodes</caption>
          <thead><tr><th scope="col">Node</th><th scope="col">Role</th><th scope="col">State</th><th scope="col">Attached</th><th scope="col">Lag</th><th scope="col">Breaker</th><th scope="col">Reads, last minute</th></tr></thead>
          <tbody id="nodes-body"></tbody>
        </table>
      </div>
      <div id="sentinels-wrap" class="table-wrap" tabindex="0" role="region" aria-labelledby="sentinels-caption">
        <table>
          <caption id="sentinels-caption">Sentinels</caption>
          <thead><tr><th scope="col">Sentinel</th><th scope="col">State</th><th scope="col">Names as master</th><th scope="col">Config epoch</th></tr></thead>
          <tbody id="sentinels-body"></tbody>
        </table>
      </div>
    </section>
    <section class="card timeline" aria-labelledby="tl-h">
      <h2 id="tl-h">Failover timeline <span id="timeline-count" class="muted"></span></h2>
      <div id="timeline-log" class="timeline-log" role="log" aria-labelledby="tl-h" tabindex="0"><ol id="timeline"></ol></div>
    </section>
    <section class="card traffic" aria-labelledby="tr-h">
      <h2 id="tr-h">Traffic, last 5 minutes</h2>
      <div id="charts" class="charts"></div>
      <div class="table-wrap" tabindex="0" role="region" aria-labelledby="routes-caption">
        <table>
          <caption id="routes-caption">Per route and serving role (req/s over the last 10 s; latency of the last second with requests)</caption>
          <thead><tr><th scope="col">Route</th><th scope="col">Served by</th><th scope="col">req/s</th><th scope="col">p50 ms</th><th scope="col">p99 ms</th></tr></thead>
          <tbody id="routes-body"></tbody>
        </table>
      </div>
    </section>
  </div>
</main>
</body>
</html>
`

/** GET /ui/favicon.svg (a browser asks for an icon; a 404 would be a console error). */
export const FAVICON_SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#b42318"/><circle cx="8" cy="8" r="3" fill="#fff"/></svg>\n'

/** GET /ui/ui.css. Colours keep a 4.5:1 contrast or more for text. */
export const PAGE_CSS = `
:root { --fg: #1b1f24; --muted: #4b5563; --bg: #f5f6f8; --card: #fff; --line: #d0d5dd;
  --ok: #0b6e2e; --ok-bg: #e3f4e8; --warn: #7a4d00; --warn-bg: #fff1cc; --bad: #a61b1b; --bad-bg: #fde6e6; --accent: #1d4ed8; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
.skip { position: absolute; left: -999px; top: 0; background: var(--card); padding: 6px 10px; }
.skip:focus { left: 8px; z-index: 10; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.top { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 16px; padding: 10px 16px; background: #111827; color: #f9fafb; }
.top h1 { font-size: 18px; margin: 0; }
.top .sub { font-weight: 400; color: #d1d5db; }
.top p { margin: 0; }
.top .muted { color: #d1d5db; }
#status { font-weight: 600; padding: 1px 8px; border-radius: 10px; background: #374151; }
#status[data-state="live"] { background: #14532d; }
#status[data-state="retrying"], #status[data-state="unauthorized"], #status[data-state="forbidden"] { background: #7f1d1d; }
button { font: inherit; padding: 5px 12px; border: 1px solid var(--line); border-radius: 6px; background: #fff; color: var(--fg); cursor: pointer; }
.top button { margin-left: auto; }
main { padding: 12px; }
#live { display: grid; gap: 12px; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); grid-template-areas: "dep tl" "tr tr"; }
.deployment { grid-area: dep; } .timeline { grid-area: tl; } .traffic { grid-area: tr; }
#live[hidden], [hidden] { display: none; }
@media (max-width: 900px) { #live { grid-template-columns: minmax(0, 1fr); grid-template-areas: "dep" "tl" "tr"; } }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-width: 0; }
h2 { font-size: 16px; margin: 2px 0 8px; }
h3 { font-size: 14px; margin: 0; }
#master-name { font-family: ui-monospace, monospace; }
.muted { color: var(--muted); font-weight: 400; font-size: 13px; }
#login { max-width: 480px; margin: 24px auto; }
#login form { display: grid; gap: 8px; }
#login-error:empty { display: none; }
#login input { font: inherit; padding: 6px 8px; border: 1px solid #6b7280; border-radius: 6px; }
.picture-wrap { overflow-x: auto; }
.picture-wrap svg { width: 100%; min-width: 560px; height: auto; display: block; }
.picture .node rect { fill: #f8fafc; stroke: #64748b; stroke-width: 1.5; }
.picture .node.ok rect { fill: var(--ok-bg); stroke: var(--ok); }
.picture .node.warn rect { fill: var(--warn-bg); stroke: var(--warn); }
.picture .node.bad rect { fill: var(--bad-bg); stroke: var(--bad); stroke-width: 2.5; }
.picture .node.master rect { stroke-width: 3; }
.picture text { fill: var(--fg); font-size: 12px; }
.picture .role { font-size: 10px; font-weight: 700; letter-spacing: .06em; }
.picture .name { font-family: ui-monospace, monospace; font-size: 12.5px; font-weight: 600; }
.picture .detail { font-size: 11px; }
.picture .link { stroke: var(--ok); stroke-width: 2.5; }
.picture .link.detached { stroke: #6b7280; stroke-dasharray: 6 5; }
.picture .link.unhealthy { stroke: var(--bad); }
.picture .link-label { font-size: 11px; fill: var(--muted); }
.picture .shard-label { font-size: 11.5px; font-weight: 600; }
.table-wrap { overflow-x: auto; margin-top: 8px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e5e7eb; white-space: nowrap; }
tbody th { font-family: ui-monospace, monospace; font-weight: 500; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px; white-space: normal; }
.badge.ok { background: var(--ok-bg); color: var(--ok); }
.badge.warn { background: var(--warn-bg); color: var(--warn); }
.badge.bad { background: var(--bad-bg); color: var(--bad); font-weight: 600; }
.bad-text { color: var(--bad); }
.timeline-log { max-height: 560px; overflow-y: auto; }
#timeline { list-style: none; margin: 0; padding: 0; font-size: 13px; }
#timeline li { display: flex; flex-wrap: wrap; gap: 0 8px; padding: 5px 4px 5px 8px; border-left: 4px solid #9ca3af; border-bottom: 1px solid #eef0f3; }
#timeline li.warn { border-left-color: #b7791f; }
#timeline li.bad { border-left-color: var(--bad); background: #fff7f7; }
#timeline time { font-variant-numeric: tabular-nums; color: var(--muted); }
#timeline .source { color: var(--muted); }
#timeline .kind { font-family: ui-monospace, monospace; }
#timeline .detail { flex-basis: 100%; overflow-wrap: anywhere; }
.charts { display: grid; gap: 10px; grid-template-columns: repeat(auto-fill, minmax(290px, 1fr)); }
.chart-card { margin: 0; padding: 8px 10px; }
.chart { width: 100%; height: auto; display: block; }
.chart .axis { stroke: #6b7280; } .chart .grid { stroke: #e5e7eb; }
.chart .tick { font-size: 10px; fill: var(--muted); }
.chart .line { fill: none; stroke-width: 1.8; }
.chart .dot { stroke-width: 3.5; stroke-linecap: round; }
.legend { list-style: none; margin: 4px 0 0; padding: 0; font-size: 12px; }
.legend li { overflow-wrap: anywhere; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 5px; border-radius: 2px; }
.s0 { stroke: #1d4ed8; background: #1d4ed8; } .s1 { stroke: #c2410c; background: #c2410c; } .s2 { stroke: #047857; background: #047857; }
.s3 { stroke: #7e22ce; background: #7e22ce; } .s4 { stroke: #a16207; background: #a16207; } .s5 { stroke: #be185d; background: #be185d; }
.empty { margin: 4px 0 0; font-size: 12px; color: var(--muted); }
code { font-family: ui-monospace, monospace; }
`
