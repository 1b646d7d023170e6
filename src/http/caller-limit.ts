import type { FastifyReply } from 'fastify'
import { type Clock, systemClock } from '../deadline.js'
import { ServiceError } from '../errors.js'
import { REDIS_UNAVAILABLE, type RedisLink } from '../redis/connection.js'
import { type CallerCount, LocalCallerCounters } from './local-caller-counters.js'

/**
 * A caller's counter in Redis, for a script that counts the caller in the same round trip as other
 * work (the token cache's read, see RedisTokenStore.lookupCounting).
 */
export interface CallerCounter {
  redisKey: string
  windowMs: number
}

export interface CallerLimitOptions {
  /** RATE_LIMIT_MAX requests per RATE_LIMIT_WINDOW_S per caller. */
  max: number
  windowS: number
  redis: RedisLink | undefined
  clock?: Clock
}

/**
 * The per-caller limit (RATE_LIMIT_MAX per RATE_LIMIT_WINDOW_S): fixed windows, counted in Redis when
 * it is configured (every replica shares one counter per caller), in process memory while Redis cannot
 * count. Callers are keyed by their verified session (SessionContext.callerKey, already hashed: a
 * subject or an address is personal data), so forged tokens spend nobody's quota. GET and DELETE share
 * one counter: the limit is on the resource.
 */
export interface CallerLimit {
  counterFor: (callerKey: string) => CallerCounter
  /** Counts one request: in Redis (one script), else in process memory. */
  count: (callerKey: string) => Promise<CallerCount>
  /** Counts one request in process memory (Redis could not count it). */
  countLocally: (callerKey: string) => CallerCount
  /** Sets the x-ratelimit-* headers; past the limit, throws 429 `rate_limited` with Retry-After. */
  enforce: (reply: FastifyReply, count: CallerCount) => void
}

/**
 * Counts one request in a fixed window, incrementing and expiring in one step: the caller's counter is
 * KEYS[1], the window ARGV[1]; leaves `current` and `ttl` for the rest of the script. Scripts that count
 * the caller along with other work (RedisTokenStore's warm-hit read) begin with it.
 */
export const COUNT_CALLER_LUA = `
local current = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end`

export function createCallerLimit (options: CallerLimitOptions): CallerLimit {
  const { max, redis } = options
  const clock = options.clock ?? systemClock
  const windowMs = options.windowS * 1000
  const limitHeader = String(max)
  const local = new LocalCallerCounters(clock.now())
  const increment = redis?.defineScript('chatTokenCallerLimit', 1, `${COUNT_CALLER_LUA}\nreturn {current, ttl}`)
  const redisKeyFor = (callerKey: string): string => `${redis?.keyPrefix ?? ''}rl:${callerKey}`
  const countLocally = (callerKey: string): CallerCount => local.increment(callerKey, windowMs, max, clock.now())

  return {
    counterFor: callerKey => ({ redisKey: redisKeyFor(callerKey), windowMs }),
    countLocally,
    count: async callerKey => {
      if (redis === undefined || increment === undefined) return countLocally(callerKey)
      const answer = await redis.run(() => increment([redisKeyFor(callerKey)], [windowMs]))
      if (answer === REDIS_UNAVAILABLE) return countLocally(callerKey)
      const [current, ttl] = answer as [number, number]
      return { current, ttl }
    },
    enforce: (reply, { current, ttl }) => {
      const resetS = Math.max(0, Math.ceil(ttl / 1000))
      reply.header('x-ratelimit-limit', limitHeader)
      reply.header('x-ratelimit-remaining', String(Math.max(0, max - current)))
      reply.header('x-ratelimit-reset', String(resetS))
      if (current > max) {
        throw new ServiceError('rate_limited', `Too many requests from this caller; retry in ${resetS} s`, { retryAfterS: ttl / 1000 })
      }
    }
  }
}
