/**
 * Browser side of the operations page (compiled by the project's tsc, served by routes/ui.ts).
 * Tiny DOM helpers: elements are built with properties and textContent only, never innerHTML
 * (what the servers report is shown as text, and the CSP allows no inline script or style).
 */

type Attrs = Record<string, string | number | boolean | undefined>
type Child = Node | string | null | undefined | false

/** An HTML element with attributes (`class`, `data-*`, aria...) and children. */
export function h<K extends keyof HTMLElementTagNameMap> (tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  setAttrs(el, attrs)
  append(el, children)
  return el
}

const SVG_NS = 'http://www.w3.org/2000/svg'

/** An SVG element (presentation through attributes and classes: no style attribute). */
export function s (tag: string, attrs: Attrs = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag) as SVGElement
  setAttrs(el, attrs)
  append(el, children)
  return el
}

function setAttrs (el: Element, attrs: Attrs): void {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue
    el.setAttribute(k, v === true ? '' : String(v))
  }
}

function append (el: Element, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue
    el.append(typeof c === 'string' ? document.createTextNode(c) : c)
  }
}

/** The element with this id (it is in the page's HTML). */
export function byId<T extends HTMLElement = HTMLElement> (id: string): T {
  const el = document.getElementById(id)
  if (el === null) throw new Error(`#${id} missing from the page`)
  return el as T
}

/** Replaces the children of `el`. */
export function fill (el: Element, ...children: Child[]): void {
  el.replaceChildren()
  append(el, children)
}

/** 1234567 -> "1.2 MB"; null -> "–". */
export function bytes (n: number | null | undefined): string {
  if (n === null || n === undefined) return '–'
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`
  return `${(n / 1024 / 1024).toFixed(1)} MB`
}

/** A number with at most `digits` decimals; null -> "–". */
export function num (n: number | null | undefined, digits = 1): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–'
  return Number.isInteger(n) ? String(n) : n.toFixed(digits)
}

/** Local wall-clock time of an ISO date, with milliseconds (events a few ms apart stay ordered). */
export function clock (iso: string | number): string {
  const d = new Date(iso)
  const pad = (x: number, w = 2): string => String(x).padStart(w, '0')
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
}
