/**
 * Entry point: `node dist/src/server.js`. Configuration comes from the environment only;
 * a bad value stops the process with one line naming the variable.
 *
 * WORKERS=1 (default): this process is the gateway. WORKERS=N>1: this process becomes the cluster
 * primary (src/workers.ts) once the configuration is valid, and each of the N workers it forks runs
 * this same file as a single gateway on the shared PORT.
 */
import cluster from 'node:cluster'
import type { Logger } from 'pino'
import { loadTokens } from './auth.js'
import { ConfigError, loadConfig, type Config } from './config.js'
import { applyRuntimeV8Flags } from './runtime.js'
import { runPrimary } from './workers.js'

async function main (): Promise<void> {
  let config: Config
  try {
    config = loadConfig(process.env)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sentinel-kv-gateway: ${err.message}\n`)
      process.exit(2)
    }
    throw err
  }
  if (config.workers > 1 && cluster.isPrimary) {
    // The token list is the one thing buildApp still validates: check it before forking too.
    try {
      loadTokens(config.authTokens, config.authTokensFile)
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      process.stderr.write(`sentinel-kv-gateway: ${err.message}\n`)
      process.exit(2)
    }
    runPrimary(config)
    return
  }
  // Process-wide V8 settings belong to the process that serves (each worker), not to buildApp,
  // which tests and the Lambda handler also call in processes of their own.
  applyRuntimeV8Flags()
  // Loaded only now: a bad environment, and the cluster primary, never pay for Fastify and ioredis.
  const { buildApp } = await import('./app.js')
  const app = await buildApp(config).catch((err: unknown) => {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`sentinel-kv-gateway: ${err.message}\n`)
    process.exit(2)
  })
  // In a cluster, every line says which worker wrote it.
  if (cluster.isWorker) (app.log as unknown as Logger).setBindings({ worker: cluster.worker?.id, pid: process.pid })
  for (const w of config.warnings) app.log.warn(w)
  app.log.info({ sentinels: config.sentinels.length, masterName: config.masterName, readStrategy: config.readStrategy, durability: config.durability }, 'starting')

  let closing = false
  const shutdown = (signal: string): void => {
    if (closing) return
    closing = true
    app.log.info({ signal }, 'shutting down: no new connections, finishing in-flight requests')
    setTimeout(() => {
      app.log.error({ timeoutMs: config.shutdownTimeoutMs }, 'in-flight requests did not finish in time: exiting anyway')
      process.exit(1)
    }, config.shutdownTimeoutMs).unref()
    app.close().then(() => process.exit(0), (err: unknown) => {
      app.log.error({ err }, 'error while shutting down')
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  process.on('SIGINT', () => shutdown('SIGINT'))

  const address = await app.listen({ host: config.host, port: config.port })
  app.log.info({ address }, 'listening')
}

main().catch((err: unknown) => {
  process.stderr.write(`sentinel-kv-gateway: failed to start: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
