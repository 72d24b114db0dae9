/**
 * Talking to the sentinels: asking every one of them where the master and replicas are, and
 * listening to their event channels. Sentinels that do not answer are skipped and reported.
 */
import { EventEmitter } from 'node:events'
import { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { clientOptions, closeClient, nodeKey, type ClientSettings, type NodeAddress } from '../redis/connections.js'
import { withTimeout } from '../redis/faults.js'
import { flatToRecord } from '../redis/parse.js'
import { eventConcerns, type SentinelAnswer } from './answers.js'

export interface SentinelStatus extends NodeAddress {
  reachable: boolean
  /** Last error message, if the last query failed (never contains a password). */
  lastError?: string
  /** The master this sentinel named in its last answer (`host:port`), and that answer's config epoch. */
  names?: { master: string; epoch: number }
}

/** Events that start or advance a failover: writes to the old master are held from here on. */
export const FAILOVER_START_EVENTS = new Set([
  '+try-failover', '+elected-leader', '+failover-state-select-slave', '+selected-slave',
  '+failover-state-send-slaveof-noone', '+failover-state-wait-promotion', '+promoted-slave'
])
/** Events after which the failover is over, one way or another. */
export const FAILOVER_END_EVENTS = new Set(['+switch-master', '+failover-end', '-failover-abort-not-elected',
  '-failover-abort-no-good-slave', '-failover-abort-slave-timeout', '+failover-end-for-timeout'])
/** Other events that change which nodes should serve. */
export const TOPOLOGY_EVENTS = new Set(['+sdown', '-sdown', '+odown', '-odown', '+slave', '+convert-to-slave',
  '-role-change', '+role-change', '+reboot', '+slave-reconf-done', '-slave-restart-as-master', '+fix-slave-config'])

const toReplica = (r: Record<string, string>): SentinelAnswer['replicas'][number] => ({
  host: r.ip ?? '',
  port: Number(r.port),
  flags: (r.flags ?? '').split(','),
  linkOk: r['master-link-status'] === 'ok',
  roleReported: r['role-reported'] ?? 'unknown'
})

export interface SentinelEvent { sentinel: string; channel: string; message: string }

/**
 * One command connection and one subscriber connection per sentinel.
 * Emits 'event' (SentinelEvent) for every event about our master set, and 'resubscribed' when a
 * subscriber connection comes back (events may have been missed: refresh).
 */
export class Sentinels extends EventEmitter {
  readonly statuses: SentinelStatus[]
  private readonly commands: Redis[]
  private readonly subscribers: Redis[]

  constructor (addrs: NodeAddress[], private readonly masterName: string, settings: ClientSettings,
    private readonly timeoutMs: number, log: Logger) {
    super()
    this.statuses = addrs.map(a => ({ host: a.host, port: a.port, reachable: false }))
    const make = (a: NodeAddress, name: string): Redis => {
      // Sentinel queries are read-only and idempotent: queueing them while connecting is harmless.
      const c = new Redis({ ...clientOptions(a, { ...settings, name }), enableOfflineQueue: true, db: 0 })
      c.on('error', () => { /* reported through statuses and the query results */ })
      return c
    }
    this.commands = addrs.map(a => make(a, 'skv-gateway-query'))
    this.subscribers = addrs.map((a, i) => {
      const sub = make(a, 'skv-gateway-events')
      let everReady = false
      sub.on('ready', () => {
        if (everReady) this.emit('resubscribed', nodeKey(a))
        everReady = true
      })
      sub.psubscribe('*').catch((err: Error) => log.warn({ sentinel: nodeKey(a), err: err.message }, 'sentinel psubscribe failed'))
      sub.on('pmessage', (_pattern: string, channel: string, message: string) => {
        if (eventConcerns(channel, message, masterName)) {
          this.emit('event', { sentinel: nodeKey(addrs[i]!), channel, message } satisfies SentinelEvent)
        }
      })
      return sub
    })
  }

  /** Asks every sentinel in parallel; returns the answers of those that replied in time. */
  async queryAll (): Promise<SentinelAnswer[]> {
    const results = await Promise.allSettled(this.commands.map(async (c, i) => {
      const key = nodeKey(this.statuses[i]!)
      return await withTimeout(`sentinel ${key}`, this.timeoutMs, async () => {
        const [m, r] = await Promise.all([
          c.call('SENTINEL', 'MASTER', this.masterName),
          c.call('SENTINEL', 'REPLICAS', this.masterName)
        ])
        const master = flatToRecord(m)
        return {
          sentinel: key,
          master: { host: master.ip ?? '', port: Number(master.port ?? 0) },
          epoch: Number(master['config-epoch'] ?? 0),
          masterFlags: (master.flags ?? '').split(','),
          replicas: (Array.isArray(r) ? r : []).map(x => toReplica(flatToRecord(x)))
        } satisfies SentinelAnswer
      })
    }))
    const answers: SentinelAnswer[] = []
    results.forEach((res, i) => {
      const st = this.statuses[i]!
      st.reachable = res.status === 'fulfilled'
      if (res.status === 'fulfilled') {
        answers.push(res.value)
        st.names = { master: nodeKey(res.value.master), epoch: res.value.epoch }
        delete st.lastError
      } else {
        st.lastError = res.reason instanceof Error ? res.reason.message : String(res.reason)
      }
    })
    return answers
  }

  close (): void {
    for (const c of [...this.commands, ...this.subscribers]) closeClient(c)
  }
}
