import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import type { Config } from './config/types.js'
import { ConfigError, loadConfig } from './config/load-config.js'
import { processEnvironment } from './environment.js'
import { type MetricsListener, startMetricsListener } from './metrics/listener.js'
import { createServiceMetrics } from './metrics/service-metrics.js'
import type { Lifecycle } from './routes/health.js'
import { startupSummary } from './startup.js'
import { startTracing } from './telemetry/start.js'

/** The one file that touches the process: environment, listening, signals. */

/**
 * The built browser helper, dist/public: beside dist/server.js in a build, and the same folder when
 * `npm run dev` runs this file from src/ (dev/dev-server.ts bundles the helper there first).
 */
const browserHelperDir = fileURLToPath(new URL('../dist/public/', import.meta.url))

/** Start-up failed for a reason one line explains: printed as it is, without a stack trace. */
class StartupError extends Error {}

/**
 * Opens a listener; a port in use or refused becomes one line naming the variable that sets it
 * (PORT, METRICS_PORT), rather than Node's bare `listen EADDRINUSE`.
 */
async function listening<T> (variable: string, port: number, host: string, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen()
  } catch (error) {
    switch ((error as NodeJS.ErrnoException | null)?.code) {
      case 'EADDRINUSE':
        throw new StartupError(`${variable}=${port}: the port is already in use on ${host}; stop what listens there or set ${variable} to a free port`)
      case 'EACCES':
        throw new StartupError(`${variable}=${port}: this user may not listen on that port on ${host} (ports below 1024 need privileges); set ${variable} to 1024 or above`)
      case 'EADDRNOTAVAIL':
        throw new StartupError(`HOST=${host}: not an address of this machine; set HOST to one of its addresses, or 0.0.0.0 for all`)
      default:
        throw error
    }
  }
}

/**
 * How long a shutdown may take before the process is killed: the drain, then the longest a request in
 * flight can still run (its upstream deadlines), plus a margin for closing pools and Redis.
 */
function shutdownBudgetMs (config: Config): number {
  return config.shutdownDrainMs + config.hubspot.timeoutMs + (config.userLookup?.timeoutMs ?? 0) + 2000
}

async function main (): Promise<void> {
  let config
  try {
    config = loadConfig(processEnvironment())
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`chat-token: ${error.message}\n`)
      process.exit(1)
    }
    throw error
  }

  const lifecycle: Lifecycle = { draining: false }
  const metrics = config.metricsPort === 0 ? undefined : createServiceMetrics({ redisConfigured: config.redisUrl !== undefined })
  // Before buildApp, which is early enough for every instrumentation (see telemetry/start.ts).
  const tracing = await startTracing(processEnvironment(), { directoryTemplate: config.userLookup?.urlTemplate, redis: config.redisUrl !== undefined })
  const app = await buildApp(config, { lifecycle, metrics, browserHelperDir })
  if (tracing.enabled) app.log.info({ tracesUrl: tracing.tracesUrl }, 'tracing on')
  let metricsListener: MetricsListener | undefined

  // The first signal drains and closes; a second one (or the budget running out) exits at once with 1.
  // SIGHUP re-reads the `_FILE` secrets (a rotation without a restart) instead of shutting down.
  process.on('SIGHUP', () => {
    app.log.info('SIGHUP: reading the secret files')
    void app.reloadSecrets()
  })
  closeWithGrace({
    skip: ['SIGHUP'],
    delay: shutdownBudgetMs(config),
    logger: { error: (error: unknown) => app.log.error({ err: error }, 'shutdown failed') },
    onSecondSignal: signal => app.log.warn({ signal }, 'second signal, exiting at once'),
    onTimeout: delay => app.log.error({ delayMs: delay }, 'shutdown took too long, exiting')
  }, async ({ signal, err }) => {
    const startedAt = Date.now()
    lifecycle.draining = true
    if (err !== undefined) {
      app.log.fatal({ err }, 'unexpected error, closing without a drain')
    } else if (signal === 'SIGTERM' && config.shutdownDrainMs > 0) {
      // Readiness now answers 503; requests keep being served until the load balancer has noticed.
      app.log.info({ signal, drainMs: config.shutdownDrainMs }, 'draining')
      await sleep(config.shutdownDrainMs)
    }
    app.log.info({ signal }, 'closing: refusing new connections, finishing requests in flight')
    // onClose hooks close the HubSpot pool, the user directory and Redis.
    await app.close()
    await metricsListener?.close()
    await tracing.shutdown()
    app.log.info({ ms: Date.now() - startedAt }, 'closed')
  })

  const url = await listening('PORT', config.port, config.host, () => app.listen({ port: config.port, host: config.host }))
  if (metrics !== undefined) {
    const options = { port: config.metricsPort, host: config.host }
    metricsListener = await listening('METRICS_PORT', config.metricsPort, config.host, () => startMetricsListener(metrics.registry, options))
  }
  app.log.info(startupSummary(config, { url, metricsUrl: metricsListener?.url }), 'chat-token started')
  // Out at once rather than with the next batch: operators and orchestrators watch for this line.
  app.flushLogs()
}

main().catch(error => {
  if (error instanceof StartupError) {
    process.stderr.write(`chat-token: ${error.message}\n`)
    process.exit(1)
  }
  process.stderr.write(`chat-token: failed to start: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(1)
})
