import Fastify, { type FastifyInstance, LogController } from 'fastify'
import type { DestinationStream } from 'pino'
import { sessionAuth } from './auth/session.js'
import type { Config } from './config/types.js'
import { singletonHeaders } from './http/singleton-headers.js'
import { type Clock, systemClock } from './deadline.js'
import type { HubSpotClient } from './hubspot/client.js'
import { hubspotStage } from './hubspot/hubspot-stage.js'
import { edgeProtection } from './http/edge.js'
import { listenerOptions } from './http/listener-options.js'
import { registerProblemHandlers } from './http/problem.js'
import { requestIdFrom } from './http/request-id.js'
import { requestLoggerFactory } from './request-logger.js'
import { createLoggers, createRotatingEmailHasher } from './logging.js'
import { requestMetrics } from './metrics/request-metrics.js'
import type { ServiceMetrics } from './metrics/service-metrics.js'
import { chatIdentityScriptRoutes, DEFAULT_BROWSER_HELPER_DIR } from './routes/chat-identity-script.js'
import { chatTokenRoutes } from './routes/chat-token.js'
import { healthRoutes, type Lifecycle } from './routes/health.js'
import { ReadinessChecks } from './readiness.js'
import { sharedState } from './redis/shared-state.js'
import { watchSecrets } from './secrets/secret-rotation.js'
import { cacheKeyRing } from './tokens/cache-keyring.js'
import { noServiceEvents } from './events.js'
import { tokenStage } from './tokens/token-stage.js'

export interface AppDependencies {
  clock?: Clock
  /** Where logs go (tests capture them); stdout by default. */
  logStream?: DestinationStream
  /** Shared with server.ts, which flips `draining` on SIGTERM. */
  lifecycle?: Lifecycle
  random?: () => number
  /** Prefix of every Redis key and channel (default `ct:v1:`): tests sharing one Redis use their own. */
  redisKeyPrefix?: string
  /**
   * Prometheus metrics (server.ts serves them on METRICS_PORT); none are kept when absent. Its
   * `events` is what the token cache, budget, breaker and Redis code report to.
   */
  metrics?: ServiceMetrics
  /** Folder of the built browser helper (default dist/public); tests and the demo bundle their own. */
  browserHelperDir?: string
  /** Handed the HubSpot client once it exists: tests read its pool stats to prove no socket leaks. */
  onHubSpotClient?: (client: HubSpotClient) => void
  /** How `_FILE` secrets are watched: a stat every `checkIntervalMs` (default 10 s) besides a directory watch (`watchDirectories: false` leaves it out). */
  secretFiles?: { checkIntervalMs?: number; watchDirectories?: boolean }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Reads every `_FILE` secret now (server.ts calls it on SIGHUP). */
    reloadSecrets: () => Promise<void>
    /** Writes out the log lines batched so far (logging.ts), for a line that must be seen at once. */
    flushLogs: () => void
  }
}

/** A hop count trusts that many proxies in front of us, counted from the socket. */
function trustProxyOption (value: Config['trustProxy']): boolean | string[] | ((address: string, hop: number) => boolean) {
  return typeof value === 'number' ? (_address, hop) => hop < value : value
}

/** Builds the service without listening: tests and server.ts both start here. */
export async function buildApp (config: Config, deps: AppDependencies = {}): Promise<FastifyInstance> {
  const clock = deps.clock ?? systemClock
  const lifecycle = deps.lifecycle ?? { draining: false }

  const loggers = createLoggers(config.logLevel, deps.logStream)
  const app = Fastify({
    loggerInstance: loggers.service,
    // Fastify's own two lines per request are replaced by the one line of the onResponse hook.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: requestLoggerFactory,
    genReqId: requestIdFrom,
    trustProxy: trustProxyOption(config.trustProxy),
    // The service reads no request bodies; a small limit keeps junk uploads cheap to refuse.
    bodyLimit: 16 * 1024,
    ...listenerOptions(config.http)
  })

  registerProblemHandlers(app)
  for (const warning of config.warnings) app.log.warn({ setting: warning.setting }, warning.message)
  await app.register(singletonHeaders)
  // Hooks on every request take a callback, not an async function: no promise per request.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    done()
  })
  // While draining, every answer closes its connection, so clients and proxies reconnect elsewhere. At
  // send time, not arrival: a request that began before SIGTERM must not leave an idle keep-alive socket
  // holding the server's close open.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (lifecycle.draining) reply.header('connection', 'close')
    done(null, payload)
  })
  // app.close() without server.ts (tests, embedding) is a shutdown too: readiness must say so.
  app.addHook('preClose', async () => { lifecycle.draining = true })
  await app.register(edgeProtection, { corsOrigins: config.corsOrigins, loadShedding: config.loadShedding })
  if (deps.metrics !== undefined) await app.register(requestMetrics, { observe: deps.metrics.observeRequest })
  // One line per request (access-log.ts): status, duration, error code, hashed email.
  app.addHook('onResponse', (request, reply, done) => {
    loggers.access({
      reqId: request.id,
      method: request.method,
      path: request.url.split('?', 1)[0] ?? '',
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 10) / 10,
      code: request.errorCode ?? undefined,
      user: request.emailHash ?? undefined
    })
    done()
  })
  app.decorate('flushLogs', loggers.flush)
  // Last of all (onClose hooks run in reverse order): what the stages log while closing is written too.
  app.addHook('onClose', async () => { loggers.close() })

  // Secrets from files follow their files (and SIGHUP); every stage reads them when it uses them.
  const secrets = watchSecrets(config, { log: app.log, ...deps.secretFiles })
  app.decorate('reloadSecrets', secrets.reload)
  app.addHook('onClose', async () => { secrets.close() })
  const readiness = new ReadinessChecks()
  if (secrets.check !== undefined) readiness.add('secrets', secrets.check)
  const cacheKeys = cacheKeyRing(secrets.cacheKey, secrets.hubspotAccessToken)
  const hashEmail = createRotatingEmailHasher(cacheKeys)
  const events = deps.metrics?.events ?? noServiceEvents

  // The stages of a request, in the order it meets them; each builds and closes its own parts.
  await app.register(sharedState, { url: config.redisUrl, keyPrefix: deps.redisKeyPrefix, clock, events, readiness })
  await app.register(sessionAuth, {
    jwt: config.jwt,
    identity: config.identity,
    userLookup: config.userLookup,
    hashEmail,
    keyText: secrets.jwtKey,
    userLookupAuth: secrets.userLookupAuth,
    readiness
  })
  await app.register(hubspotStage, {
    config: config.hubspot,
    accessToken: secrets.hubspotAccessToken,
    clock,
    random: deps.random,
    events,
    readiness,
    onAttempt: deps.metrics?.hubspotAttempt
  })
  await app.register(tokenStage, { config, clock, random: deps.random, events, cacheKeys })
  if (deps.onHubSpotClient !== undefined) deps.onHubSpotClient(app.hubspot)

  await app.register(healthRoutes, { lifecycle, checks: readiness })
  await app.register(chatIdentityScriptRoutes, { dir: deps.browserHelperDir ?? DEFAULT_BROWSER_HELPER_DIR })
  await app.register(chatTokenRoutes, {
    corsOrigins: config.corsOrigins,
    timeoutMs: config.hubspot.timeoutMs,
    clock,
    callerLimit: config.callerRateLimit
  })
  return app
}
