import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Clock } from '../deadline.js'
import type { ServiceEvents } from '../events.js'
import type { ReadinessChecks } from '../readiness.js'
import { connectRedis, type RedisLink } from './connection.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Redis shared by every replica (REDIS_URL); undefined in memory mode. */
    redis: RedisLink | undefined
  }
}

export interface SharedStateOptions {
  /** REDIS_URL; undefined: memory mode, every replica on its own. */
  url: string | undefined
  /** Prefix of every Redis key and channel; tests give each run its own. */
  keyPrefix?: string
  clock: Clock
  events: ServiceEvents
  readiness: ReadinessChecks
}

/** How long start-up waits for Redis, so the first requests already share state; after that it carries on without. */
const REDIS_STARTUP_WAIT_MS = 1000

/**
 * The first stage: the Redis link every later stage keeps its shared state on (cache, budgets,
 * counters). It closes last, after every stage that uses it (Fastify closes plugins in reverse order).
 */
async function sharedStatePlugin (app: FastifyInstance, options: SharedStateOptions): Promise<void> {
  const redis = options.url === undefined
    ? undefined
    : await connectRedis({ url: options.url, keyPrefix: options.keyPrefix, log: app.log, events: options.events, clock: options.clock })
  app.decorate('redis', redis)
  if (redis === undefined) return
  app.addHook('onClose', () => redis.close())
  options.readiness.add('redis', () => {
    const health = redis.health()
    return health.status === 'ok' ? 'ok' : { status: 'degraded', reason: `${health.reason}: ${health.detail}` }
  })
  await redis.waitUntilUp(REDIS_STARTUP_WAIT_MS)
}

export const sharedState = fp(sharedStatePlugin, { name: 'shared-state', fastify: '5.x' })
