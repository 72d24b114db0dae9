/**
 * Who may subscribe to what: the pub/sub right (`p`), no reserved channel (`__...`, Redis's and
 * Sentinel's), and for a token limited to a prefix only channels inside it. The same rules as
 * src/security/policy.ts applies to PUBLISH, SPUBLISH and PUBSUB, for SUBSCRIBE, PSUBSCRIBE and SSUBSCRIBE.
 *
 * Patterns: one that starts with `__` is refused; any other may match reserved channels (`*`,
 * `_*`, `[_]*`...), whose messages the hub never delivers (and the data user's Redis ACL never
 * lets reach the gateway). A prefixed token's pattern must start with its prefix, byte for byte,
 * and the prefix must hold no glob character: every byte of that start then matches literally,
 * so no channel outside the prefix can match.
 */
import type { Principal } from '../auth.js'
import { NoPermission } from '../security/policy.js'
import { isReservedChannel, startsWithBytes } from '../security/reserved.js'

export type SubscriptionKind = 'subscribe' | 'psubscribe' | 'ssubscribe'

/** Characters with a meaning in a Redis glob pattern. */
const GLOB = /[*?[\\]/

/** Throws NoPermission (403 `NOPERM ...`) unless `p` may subscribe to every one of `names` (channels or patterns). */
export function checkSubscription (p: Principal, kind: SubscriptionKind, names: readonly string[]): void {
  const shown = kind.toUpperCase()
  if (!p.rights.has('pubsub')) throw new NoPermission(`NOPERM this token has no pubsub right: it cannot run '${shown}' (publish/subscribe needs p)`)
  for (const n of names) {
    if (isReservedChannel(n)) throw new NoPermission(`NOPERM '${shown}' names a channel reserved for Redis and Sentinel (starting with "__")`)
  }
  if (p.prefix === '') return
  const scope = `NOPERM this token may only use channels starting with "${p.prefix}"`
  if (kind === 'psubscribe' && GLOB.test(p.prefix)) throw new NoPermission(`${scope}: a pattern cannot be confined to a prefix holding glob characters`)
  const prefix = Buffer.from(p.prefix)
  for (const n of names) {
    if (!startsWithBytes(n, prefix)) throw new NoPermission(`${scope}: '${shown}' names ${kind === 'psubscribe' ? 'a pattern that may match another channel' : 'another channel'}`)
  }
}
