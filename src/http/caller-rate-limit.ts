import fastifyRateLimit, { type FastifyRateLimitStore, type FastifyRateLimitStoreCtor } from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { type Clock, systemClock } from '../deadline.js'
import { ServiceError } from '../errors.js'
import { REDIS_UNAVAILABLE, type RedisLink } from '../redis/connection.js'

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
  /** The caller's identity for counting (JWT subject, else client IP), already hashed. */
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

/** Local counters are bounded: beyond this many callers the oldest window is dropped. */
const MAX_LOCAL_CALLERS = 100_000

function callerLimitStore (redis: RedisLink | undefined, clock: Clock): FastifyRateLimitStoreCtor {
  const local = new Map<string, { current: number; resetAt: number }>()
  const increment = redis?.defineScript('chatTokenCallerLimit', 1, incrementLua)

  function incrementLocally (key: string, windowMs: number): { current: number; ttl: number } {
    const now = clock.now()
    // Windows are re-inserted when they start, so the Map is in expiry order: drop the finished ones.
    for (const [oldest, { resetAt }] of local) {
      if (resetAt > now) break
      local.delete(oldest)
    }
    let entry = local.get(key)
    if (entry === undefined) {
      entry = { current: 0, resetAt: now + windowMs }
      local.set(key, entry)
      if (local.size > MAX_LOCAL_CALLERS) local.delete(local.keys().next().value!)
    }
    entry.current += 1
    return { current: entry.current, ttl: entry.resetAt - now }
  }

  return class CallerLimitStore implements FastifyRateLimitStore {
    incr (key: string, callback: IncrCallback, timeWindow?: number): void {
      const windowMs = timeWindow ?? 60_000
      if (redis === undefined || increment === undefined) {
        callback(null, incrementLocally(key, windowMs))
        return
      }
      redis.run(() => increment([`${redis.keyPrefix}rl:${key}`], [windowMs])).then(answer => {
        if (answer === REDIS_UNAVAILABLE) {
          callback(null, incrementLocally(key, windowMs))
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
