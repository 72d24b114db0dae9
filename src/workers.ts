/**
 * WORKERS > 1: the cluster primary. It never connects to Redis; it forks `config.workers` copies of
 * this same entry point (node:cluster), each a full gateway (own Redis connections, topology, breakers,
 * near-cache) listening on the one shared PORT, and:
 *
 * - restarts a worker that dies while the service is running, after a delay that doubles (up to
 *   RESTART_MAX_DELAY_MS) while workers of that slot keep dying within MIN_UPTIME_MS of their start,
 *   so a crash loop costs a fork every few seconds, not a spinning CPU;
 * - a worker that exits 2 (configuration error) stops everything with exit code 2: every other worker
 *   would fail the same way;
 * - on SIGTERM/SIGINT forwards SIGTERM to every worker (each finishes its in-flight requests within
 *   SHUTDOWN_TIMEOUT_MS and exits 0), restarts none, and exits 0 once all exited cleanly, 1 if one did
 *   not or they are not all gone SHUTDOWN_TIMEOUT_MS + SHUTDOWN_MARGIN_MS after the signal (the rest
 *   are then killed).
 *
 * No worker outlives the primary: when its IPC channel to the primary closes (primary killed), Node's
 * cluster worker exits at once by itself.
 */
import cluster, { type Worker } from 'node:cluster'
import { pino } from 'pino'
import type { Config } from './config.js'
import { loggerOptions } from './logger.js'

export const MIN_UPTIME_MS = 10_000
export const RESTART_BASE_DELAY_MS = 100
export const RESTART_MAX_DELAY_MS = 10_000
const SHUTDOWN_MARGIN_MS = 2_000

/** Delay before restarting a slot whose workers died `quickDeaths` times in a row within MIN_UPTIME_MS. */
export function restartDelayMs (quickDeaths: number): number {
  return Math.min(RESTART_MAX_DELAY_MS, RESTART_BASE_DELAY_MS * 2 ** Math.min(quickDeaths, 20))
}

interface Slot { worker?: Worker; startedAt: number; quickDeaths: number; timer?: NodeJS.Timeout }

/** Runs the primary until a signal (or a configuration error in a worker) ends it with process.exit. */
export function runPrimary (config: Config): void {
  const log = pino(loggerOptions(config.logLevel)).child({ role: 'primary', pid: process.pid })
  const slots: Slot[] = Array.from({ length: config.workers }, () => ({ startedAt: 0, quickDeaths: 0 }))
  const live = new Set<Worker>()
  let stopping = false
  let failed = false
  /** Set when the exit code is decided by the cause of the stop (2: configuration error). */
  let forcedCode: number | undefined

  const finish = (): void => {
    const code = forcedCode ?? (failed ? 1 : 0)
    log.info({ exitCode: code }, 'all workers stopped')
    process.exit(code)
  }

  const fork = (index: number): Worker => {
    const slot = slots[index] as Slot
    slot.timer = undefined
    slot.startedAt = Date.now()
    const worker = cluster.fork()
    slot.worker = worker
    live.add(worker)
    worker.on('exit', (code, signal) => {
      live.delete(worker)
      slot.worker = undefined
      const pid = worker.process.pid
      if (stopping) {
        // Our SIGTERM can reach a worker still starting, before its own handler is installed.
        const clean = code === 0 || signal === 'SIGTERM'
        if (!clean) failed = true
        log[clean ? 'info' : 'error']({ worker: worker.id, workerPid: pid, code, signal }, 'worker stopped')
        if (live.size === 0) finish()
        return
      }
      if (code === 2) {
        log.fatal({ worker: worker.id, workerPid: pid, code }, 'worker exited with a configuration error: stopping')
        stop('configuration error', 2)
        return
      }
      const uptimeMs = Date.now() - slot.startedAt
      slot.quickDeaths = uptimeMs < MIN_UPTIME_MS ? slot.quickDeaths + 1 : 0
      const delayMs = restartDelayMs(slot.quickDeaths)
      log.error({ worker: worker.id, workerPid: pid, code, signal, uptimeMs, restartInMs: delayMs }, 'worker died unexpectedly: restarting it')
      slot.timer = setTimeout(() => {
        const next = fork(index)
        log.info({ worker: next.id, workerPid: next.process.pid, replaces: pid }, 'worker restarted')
      }, delayMs)
    })
    return worker
  }

  /** Forwards a graceful shutdown to every worker; `exitCode` forces the primary's code (else 0 or 1). */
  const stop = (reason: string, exitCode?: number): void => {
    if (stopping) return
    stopping = true
    forcedCode = exitCode
    for (const slot of slots) clearTimeout(slot.timer)
    log.info({ reason, workers: live.size }, 'shutting down: SIGTERM to every worker, no restarts')
    setTimeout(() => {
      log.error({ timeoutMs: config.shutdownTimeoutMs + SHUTDOWN_MARGIN_MS, left: [...live].map(w => w.process.pid) }, 'workers did not stop in time: killing them')
      for (const w of live) w.process.kill('SIGKILL')
      process.exit(forcedCode ?? 1)
    }, config.shutdownTimeoutMs + SHUTDOWN_MARGIN_MS).unref()
    if (live.size === 0) { finish(); return }
    for (const w of live) w.process.kill('SIGTERM')
  }

  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))

  const workers = slots.map((_, i) => fork(i))
  log.info({ workers: workers.length, pids: workers.map(w => w.process.pid), port: config.port }, `started ${workers.length} workers`)
}
