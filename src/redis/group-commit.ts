/**
 * Group commit of /kv writes on one write connection: concurrent writes share one `ROLE` + `WAIT`.
 *
 * Redis runs the commands of one connection in order, and `WAIT n` waits until n replicas have the
 * replication offset of the connection's LAST write: one WAIT sent after several writes confirms
 * all of them, and a ROLE sent after them says the node still called itself master once they ran
 * (the offset it answers covers them all, a valid sync token for each). So a write is sent at once
 * and joins the connection's open group; the group's ROLE and WAIT follow it:
 *
 *  - in the same socket write as every write of this event-loop turn (the socket is corked from the
 *    group's first write until its ROLE and WAIT are written), and
 *  - not before the WAIT already in flight on the connection has answered: Redis would not run
 *    anything behind a blocked WAIT anyway, and meanwhile every new write joins the open group
 *    (the busier the connection, the more writes one WAIT confirms).
 *
 * A write's confirmation is only ever the ROLE and WAIT that followed it on its own connection: a
 * write whose own reply is an error (NOSCRIPT included) fails its attempt, and the caller's next
 * attempt is a new write with a new confirmation. Writes of different WAIT counts never share a
 * group (a WAIT for more replicas than a write needs could only delay it).
 *
 * One timer per group, not per write, bounds the wait: when it fires, every write of the group
 * still waiting fails with RedisTimeoutError (as a per-call timeout of the same length would).
 */
import type { Redis } from 'ioredis'
import { RedisTimeoutError } from './faults.js'

/** What confirmed a write: its own reply, the ROLE answered after it, the replicas WAIT counted. */
export interface Confirmed { reply: unknown; role: unknown; acked: number }

interface Member { resolve: (c: { role: unknown; acked: number }) => void; reject: (err: unknown) => void }

interface Group {
  /** The WAIT count (0: ROLE only). */
  n: number
  waitTimeoutMs: number
  members: Member[]
  timer: NodeJS.Timeout | undefined
  /** The stream corked by the group's first write (a reconnect replaces the client's stream). */
  corked: NodeJS.WritableStream & { uncork(): void } | undefined
  settled: boolean
}

interface State {
  open: Group | undefined
  /** Groups with a WAIT sent and not answered yet. */
  waiting: number
  flushScheduled: boolean
}

export class GroupCommit {
  private readonly states = new WeakMap<Redis, State>()

  /**
   * Sends one write on `c` (`send` issues exactly one command on it and returns its reply) and
   * resolves once a ROLE and, when `n` > 0, a `WAIT n waitTimeoutMs` sent after it have answered.
   * Rejects with the write's own error, the ROLE's or WAIT's error, or RedisTimeoutError after
   * `timeoutMs` (counted from the group's first write). `what` names the call in a timeout message.
   */
  async write (c: Redis, n: number, waitTimeoutMs: number, timeoutMs: number, what: string, send: (c: Redis) => Promise<unknown>): Promise<Confirmed> {
    const state = this.stateOf(c)
    let g = state.open
    if (g !== undefined && (g.n !== n || g.waitTimeoutMs !== waitTimeoutMs)) {
      // Another WAIT count: the open group goes now, the new write starts its own.
      this.flush(c, state)
      g = undefined
    }
    if (g === undefined) g = state.open = this.openGroup(c, state, n, waitTimeoutMs, timeoutMs, what)
    const group = g
    const reply = send(c)
    const confirmed = new Promise<{ role: unknown; acked: number }>((resolve, reject) => { group.members.push({ resolve, reject }) })
    // The write's own error wins; a confirmation that fails after it is nobody's concern.
    confirmed.catch(() => {})
    const [value, confirmation] = await Promise.all([reply, confirmed])
    return { reply: value, role: confirmation.role, acked: confirmation.acked }
  }

  private stateOf (c: Redis): State {
    let s = this.states.get(c)
    if (s === undefined) this.states.set(c, s = { open: undefined, waiting: 0, flushScheduled: false })
    return s
  }

  private openGroup (c: Redis, state: State, n: number, waitTimeoutMs: number, timeoutMs: number, what: string): Group {
    const stream = c.stream as (NodeJS.WritableStream & { cork(): void; uncork(): void }) | undefined
    stream?.cork()
    const g: Group = { n, waitTimeoutMs, members: [], timer: undefined, corked: stream, settled: false }
    g.timer = setTimeout(() => {
      // Whatever is still buffered goes out now: nothing of a failed call stays behind in this process.
      if (state.open === g) this.flush(c, state)
      this.settle(g, new RedisTimeoutError(what, timeoutMs))
    }, timeoutMs)
    g.timer.unref()
    if (!state.flushScheduled) {
      state.flushScheduled = true
      // After the I/O callbacks of this turn: every write they sent joins the group.
      setImmediate(() => {
        state.flushScheduled = false
        if (state.waiting === 0 && state.open !== undefined) this.flush(c, state)
      })
    }
    return g
  }

  /** Sends the open group's ROLE (and WAIT) and uncorks its socket. */
  private flush (c: Redis, state: State): void {
    const g = state.open
    if (g === undefined) return
    state.open = undefined
    const role = c.role()
    const wait = g.n > 0 ? c.wait(g.n, g.waitTimeoutMs) : undefined
    g.corked?.uncork()
    if (wait !== undefined) state.waiting++
    Promise.all([role, wait]).then(([r, acked]) => {
      this.settle(g, undefined, { role: r, acked: Number(acked ?? 0) })
    }, (err: unknown) => {
      this.settle(g, err)
    }).finally(() => {
      if (wait === undefined) return
      state.waiting--
      // The connection is free again: the writes that queued up meanwhile get their WAIT.
      if (state.waiting === 0 && state.open !== undefined) this.flush(c, state)
    }).catch(() => {})
  }

  private settle (g: Group, err: unknown, ok?: { role: unknown; acked: number }): void {
    if (g.settled) return
    g.settled = true
    clearTimeout(g.timer)
    for (const m of g.members) {
      if (ok !== undefined) m.resolve(ok)
      else m.reject(err)
    }
  }
}
