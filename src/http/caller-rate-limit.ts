import fastifyRateLimit, { type FastifyRateLimitStore, type FastifyRateLimitStoreCtor } from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { type Clock, systemClock } from '../deadline.js'
import { ServiceError } from '../errors.js'
import { REDIS_UNAVAILABLE, type RedisLink } from '../redis/connection.js'
import { LocalCallerCounters } from './local-caller-counters.js'

/**
 * The per-caller limit (RATE_LIMIT_MAX per RATE_LIMIT_WINDOW_S) with @fastify/rate-limit, run as a
 * preHandler so it can key on the verified session: routes opt in with `config: { rateLimit: {} }` and
 * must verify the session in an earlier preHandler. Counters live in Redis when configured, in process
 * memory while Redis is unusable; keys are hashed, since a subject or an IP address is personal data.
 */
export interface CallerRateLimitOptions {
  max: number
  windowS: number
  redis: RedisLink | undefined
  /** The caller's identity for counting (verified JWT subject, else verified email), already hashed. */
  callerKey: (request: FastifyRequest) => string
  clock?: Clock
}

type IncrCallback = Parameters<FastifyRateLimitStore['incr']>[1]

/** Fixed-window counters (as the plugin's own stores count), incremented and expired in one step. */
const incrementLua = `
local current = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {current, ttl}`

function callerLimitStore (redis: RedisLink | undefined, clock: Clock): FastifyRateLimitStoreCtor {
  const local = new LocalCallerCounters(clock.now())
  const increment = redis?.defineScript('chatTokenCallerLimit', 1, incrementLua)

  return class CallerLimitStore implements FastifyRateLimitStore {
    /** The plugin passes the window and the limit (the local counters stop counting just past it). */
    incr (key: string, callback: IncrCallback, windowMs = 60_000, max = Number.MAX_SAFE_INTEGER): void {
      if (redis === undefined || increment === undefined) {
        callback(null, local.increment(key, windowMs, max, clock.now()))
        return
      }
      redis.run(() => increment([`${redis.keyPrefix}rl:${key}`], [windowMs])).then(answer => {
        if (answer === REDIS_UNAVAILABLE) {
          callback(null, local.increment(key, windowMs, max, clock.now()))
          return
        }
        const [current, ttl] = answer as [number, number]
        callback(null, { current, ttl })
      }, (error: Error) => callback(error))
    }

    /** GET and DELETE share one counter per caller: the limit is on the resource. */
    child (): FastifyRateLimitStore {
      return this
    }
  }
}

export async function registerCallerRateLimit (app: FastifyInstance, options: CallerRateLimitOptions): Promise<void> {
  await app.register(fastifyRateLimit, {
    global: false,
    hook: 'preHandler',
    max: options.max,
    timeWindow: options.windowS * 1000,
    keyGenerator: options.callerKey,
    store: callerLimitStore(options.redis, options.clock ?? systemClock),
    // The store already falls back to memory; should anything still fail, serve rather than refuse.
    skipOnError: true,
    errorResponseBuilder: (_request, context) => new ServiceError('rate_limited', `Too many requests from this caller; retry in ${context.after}`, {
      retryAfterS: context.ttl / 1000
    })
  })
}
