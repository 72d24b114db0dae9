/**
 * Redis's glob matching (`stringmatchlen` of src/util.c, Redis 7.0, case-sensitive), on bytes:
 * the gateway matches pattern subscriptions itself (see hub.ts), so a pattern must select exactly
 * the channels Redis's own PSUBSCRIBE would. `*` any bytes, `?` one byte, `[abc]` `[^a-z]` a set
 * (C `char` comparisons, hence signed bytes in ranges), `\x` a literal byte; an unclosed `[`
 * matches as if closed at the end of the pattern.
 */

const STAR = 0x2a
const QUESTION = 0x3f
const OPEN = 0x5b
const CLOSE = 0x5d
const BACKSLASH = 0x5c
const CARET = 0x5e
const DASH = 0x2d

/** A byte as C's signed `char` (x86), as Redis compares range bounds. */
const signed = (b: number): number => (b << 24) >> 24

/** True when `channel` matches the Redis glob `pattern` (both raw bytes). */
export function globMatch (pattern: Buffer, channel: Buffer): boolean {
  // Redis's early exit: once the rest of the pattern failed after a `*` from every position,
  // no longer match of an earlier `*` can succeed (keeps the worst case polynomial).
  const skip = { longer: false }
  return match(pattern, 0, channel, 0, skip)
}

function match (p: Buffer, pi: number, s: Buffer, si: number, skip: { longer: boolean }): boolean {
  const pEnd = p.length
  const sEnd = s.length
  while (pi < pEnd && si < sEnd) {
    const c = p[pi]!
    if (c === STAR) {
      while (pi + 1 < pEnd && p[pi + 1] === STAR) pi++
      if (pi + 1 === pEnd) return true
      while (si < sEnd) {
        if (match(p, pi + 1, s, si, skip)) return true
        if (skip.longer) return false
        si++
      }
      skip.longer = true
      return false
    } else if (c === QUESTION) {
      si++
    } else if (c === OPEN) {
      pi++
      const not = p[pi] === CARET
      if (not) pi++
      let matched = false
      for (;;) {
        if (p[pi] === BACKSLASH && pEnd - pi >= 2) {
          pi++
          if (p[pi] === s[si]) matched = true
        } else if (p[pi] === CLOSE) {
          break
        } else if (pi >= pEnd) {
          pi--
          break
        } else if (pEnd - pi >= 3 && p[pi + 1] === DASH) {
          let start = signed(p[pi]!)
          let end = signed(p[pi + 2]!)
          if (start > end) [start, end] = [end, start]
          const b = signed(s[si]!)
          pi += 2
          if (b >= start && b <= end) matched = true
        } else if (p[pi] === s[si]) {
          matched = true
        }
        pi++
      }
      if (not) matched = !matched
      if (!matched) return false
      si++
    } else {
      if (c === BACKSLASH && pEnd - pi >= 2) pi++
      if (p[pi] !== s[si]) return false
      si++
    }
    pi++
    if (si === sEnd) {
      while (pi < pEnd && p[pi] === STAR) pi++
      break
    }
  }
  return pi === pEnd && si === sEnd
}
