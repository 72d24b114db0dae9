/**
 * Small time-series charts in SVG: a few lines over the last 5 minutes, the largest value as the
 * scale, the latest value of each line in the legend. The chart is an image with a text
 * alternative (its title and the legend say the numbers).
 */
import { h, num, s } from './dom.js'

export interface Series { name: string; values: Array<number | null> }

const W = 320
const H = 110
const PAD_L = 36
const PAD_B = 16

/** A chart card: heading, SVG lines, legend with the latest values. `times` are ms since the epoch. */
export function lineChart (title: string, unit: string, times: number[], series: Series[], windowMs: number): HTMLElement {
  const end = times.length > 0 ? times[times.length - 1]! : Date.now()
  const start = end - windowMs
  let max = 0
  for (const x of series) for (const v of x.values) if (v !== null && v > max) max = v
  const top = niceCeil(max)
  const xOf = (t: number): number => PAD_L + (W - PAD_L - 4) * ((t - start) / windowMs)
  const yOf = (v: number): number => 4 + (H - PAD_B - 4) * (1 - v / top)
  const id = `chart-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`
  const latest = series.map(x => `${x.name}: ${num(lastValue(x.values))} ${unit}`)
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${id}-title`, class: 'chart' },
    s('title', { id: `${id}-title` }, `${title} over the last ${Math.round(windowMs / 60000)} minutes. Latest: ${latest.length === 0 ? 'no data' : latest.join('; ')}`),
    s('line', { x1: PAD_L, y1: yOf(0), x2: W - 4, y2: yOf(0), class: 'axis' }),
    s('line', { x1: PAD_L, y1: yOf(top), x2: W - 4, y2: yOf(top), class: 'grid' }),
    s('text', { x: PAD_L - 4, y: yOf(top) + 4, 'text-anchor': 'end', class: 'tick' }, num(top)),
    s('text', { x: PAD_L - 4, y: yOf(0), 'text-anchor': 'end', class: 'tick' }, '0'),
    s('text', { x: PAD_L, y: H - 3, class: 'tick' }, `-${Math.round(windowMs / 60000)} min`),
    s('text', { x: W - 4, y: H - 3, 'text-anchor': 'end', class: 'tick' }, 'now'))
  series.forEach((x, i) => {
    // A gap (null) breaks the line: no request in that second is not "0 ms".
    // A second alone between gaps is drawn as a dot (a zero-length round-capped stroke).
    let d = ''
    let dots = ''
    x.values.forEach((v, j) => {
      if (v === null) return
      const at = `${xOf(times[j]!).toFixed(1)},${yOf(v).toFixed(1)}`
      const before = j > 0 && x.values[j - 1] !== null
      const after = j + 1 < x.values.length && x.values[j + 1] !== null
      if (!before && !after) dots += `M${at}h0`
      else d += `${before ? 'L' : 'M'}${at}`
    })
    if (d !== '') svg.append(s('path', { d, class: `line s${i % 6}` }))
    if (dots !== '') svg.append(s('path', { d: dots, class: `line dot s${i % 6}` }))
  })
  return h('figure', { class: 'card chart-card' },
    h('figcaption', {}, h('h3', {}, title)),
    svg,
    h('ul', { class: 'legend' }, ...series.map((x, i) => h('li', {},
      h('span', { class: `swatch s${i % 6}`, 'aria-hidden': 'true' }),
      `${x.name}: `, h('b', {}, `${num(lastValue(x.values))} ${unit}`)))),
    series.length === 0 ? h('p', { class: 'empty' }, 'No data yet.') : null)
}

function lastValue (values: Array<number | null>): number | null {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i]!
  return null
}

/** 0 -> 1, 7 -> 10, 130 -> 200: a round scale above `v`. */
function niceCeil (v: number): number {
  if (v <= 0) return 1
  const p = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p
  return 10 * p
}
