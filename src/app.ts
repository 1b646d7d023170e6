import Fastify, { type FastifyInstance, LogController } from 'fastify'
import type { DestinationStream } from 'pino'
import { sessionAuth } from './auth/session.js'
import { createUserDirectory } from './auth/user-lookup.js'
import type { Config } from './config.js'
import { type Clock, systemClock } from './deadline.js'
import { createHubSpotClient } from './hubspot/client.js'
import { registerProblemHandlers } from './http/problem.js'
import { requestIdFrom } from './http/request-id.js'
import { createEmailHasher, loggerOptions } from './logging.js'
import { chatTokenRoutes } from './routes/chat-token.js'
import { healthRoutes, type Lifecycle } from './routes/health.js'
import { createMintingIssuer } from './tokens/token-issuer.js'

export interface AppDependencies {
  clock?: Clock
  /** Where logs go (tests capture them); stdout by default. */
  logStream?: DestinationStream
  /** Shared with server.ts, which flips `draining` on SIGTERM. */
  lifecycle?: Lifecycle
  random?: () => number
}

/** A hop count trusts that many proxies in front of us, counted from the socket. */
function trustProxyOption (value: Config['trustProxy']): boolean | string[] | ((address: string, hop: number) => boolean) {
  return typeof value === 'number' ? (_address, hop) => hop < value : value
}

/** Builds the service without listening: tests and server.ts both start here. */
export async function buildApp (config: Config, deps: AppDependencies = {}): Promise<FastifyInstance> {
  const clock = deps.clock ?? systemClock
  const lifecycle = deps.lifecycle ?? { draining: false }

  const app = Fastify({
    logger: loggerOptions(config.logLevel, deps.logStream),
    // Fastify's own two lines per request are replaced by the one line of the onResponse hook.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: requestIdFrom,
    trustProxy: trustProxyOption(config.trustProxy),
    // The service reads no request bodies; a small limit keeps junk uploads cheap to refuse.
    bodyLimit: 16 * 1024
  })

  registerProblemHandlers(app)
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })
  // One line per request (pino costs ~60 µs a line): status, duration, error code, hashed email.
  app.addHook('onResponse', async (request, reply) => {
    request.log.info({
      method: request.method,
      path: request.url.split('?', 1)[0],
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 10) / 10,
      code: request.errorCode ?? undefined,
      user: request.emailHash ?? undefined
    }, 'request')
  })

  const hubspot = createHubSpotClient(config.hubspot, { clock, random: deps.random })
  const directory = config.userLookup === undefined ? undefined : createUserDirectory(config.userLookup)
  app.addHook('onClose', async () => {
    await Promise.all([hubspot.close(), directory?.close()])
  })

  await app.register(sessionAuth, { jwt: config.jwt })
  await app.register(healthRoutes, { lifecycle, checks: {} })
  await app.register(chatTokenRoutes, {
    issuer: createMintingIssuer(hubspot, config.hubspot.timeoutMs, clock),
    directory,
    identity: config.identity,
    corsOrigins: config.corsOrigins,
    hashEmail: createEmailHasher(config.hubspot.accessToken)
  })
  return app
}
