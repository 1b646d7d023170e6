import { randomBytes } from 'node:crypto'
import type { RateBudget } from '../config.js'
import type { Clock } from '../deadline.js'
import { REDIS_UNAVAILABLE, type RedisLink } from '../redis/connection.js'
import { type OutboundBudget, createMemoryBudget, slotSpacingMs, windowWithMarginMs } from './outbound-budget.js'

/**
 * The same reservation algorithm as SlidingLog, in one atomic script over a sorted set of reservation
 * times. Time comes from Redis (`TIME`), so the replicas' clocks do not matter. Scores may lie in the
 * future (reserved, not yet sent); the 429 pause lives in a second key checked by the same script.
 * Needs Redis 5 or later (scripts replicated by effects, so `TIME` may precede writes).
 *
 * KEYS: budget zset, pause key. ARGV: max, windowMs, unique member, maxWaitMs, spacingMs.
 * Returns { granted (1/0), waitMs }.
 */
const reserveLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local at = now
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then at = now + paused end
local size = redis.call('ZCARD', KEYS[1])
if size > 0 then
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  at = math.max(at, tonumber(newest[2]) + tonumber(ARGV[5]))
end
if size >= max then
  local limiting = redis.call('ZRANGE', KEYS[1], size - max, size - max, 'WITHSCORES')
  at = math.max(at, tonumber(limiting[2]) + window)
end
local wait = at - now
if wait > tonumber(ARGV[4]) then return {0, tostring(wait)} end
redis.call('ZADD', KEYS[1], at, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(wait + window))
return {1, tostring(wait)}`

/**
 * Whether a reserved call may go. ARGV[4] = 0 (an on-time caller): yes unless a 429 pause is on, and the
 * reservation stays where it is. ARGV[4] = 1 (a late caller): the reservation moves to Redis's now, if
 * the window ending now still has room for it. A refused reservation is dropped.
 * KEYS: budget zset, pause key. ARGV: max, windowMs, member, moveToNow. Returns 1 (go) or 0 (reserve again).
 */
const confirmLua = `
if redis.call('PTTL', KEYS[2]) > 0 then
  redis.call('ZREM', KEYS[1], ARGV[3])
  return 0
end
if ARGV[4] == '0' then return 1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
local max = tonumber(ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCOUNT', KEYS[1], '-inf', now) >= max then return 0 end
local later = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '(' .. (now + window), 'WITHSCORES')
for i = 2, #later, 2 do
  local at = tonumber(later[i])
  if redis.call('ZCOUNT', KEYS[1], '(' .. (at - window), at) >= max then return 0 end
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
if redis.call('PTTL', KEYS[1]) < window then redis.call('PEXPIRE', KEYS[1], window) end
return 1`

/** Never shortens a pause another replica set. */
const pauseLua = `
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
return 1`

export interface RedisBudgetOptions {
  link: RedisLink
  budget: RateBudget
  /** While Redis is unusable each replica keeps to `max / replicas` (HUBSPOT_RATE_LIMIT_REPLICAS). */
  replicas: number
  clock: Clock
}

export function createRedisBudget (options: RedisBudgetOptions): OutboundBudget {
  const { link, budget, clock } = options
  const windowMs = windowWithMarginMs(budget.windowMs)
  const spacingMs = slotSpacingMs(budget)
  const budgetKey = `${link.keyPrefix}budget`
  const pauseKey = `${link.keyPrefix}backoff`
  const reserveScript = link.defineScript('chatTokenReserveSlot', 2, reserveLua)
  const confirmScript = link.defineScript('chatTokenConfirmSlot', 2, confirmLua)
  const pauseScript = link.defineScript('chatTokenPause', 1, pauseLua)
  const fallback = createMemoryBudget({ max: Math.max(1, Math.floor(budget.max / options.replicas)), windowMs: budget.windowMs }, clock)
  const memberPrefix = `r${randomBytes(6).toString('base64url')}:`
  let counter = 0

  return {
    reserve: async maxWaitMs => {
      const member = `${memberPrefix}${++counter}`
      const answer = await link.run(() => reserveScript([budgetKey, pauseKey], [budget.max, windowMs, member, Math.floor(maxWaitMs), spacingMs]))
      if (answer === REDIS_UNAVAILABLE) return fallback.reserve(maxWaitMs)
      // Lua would truncate a fractional wait to an integer reply: it comes back as a string.
      const [granted, waitMs] = answer as [number, string]
      return { granted: granted === 1, waitMs: Number(waitMs), ticket: member }
    },
    confirm: async (ticket, moveToNow) => {
      // A memory ticket (reserved while Redis was down) confirms against memory.
      if (!ticket.startsWith(memberPrefix)) return fallback.confirm(ticket, moveToNow)
      const answer = await link.run(() => confirmScript([budgetKey, pauseKey], [budget.max, windowMs, ticket, moveToNow ? 1 : 0]))
      return answer === REDIS_UNAVAILABLE ? fallback.confirm(ticket, moveToNow) : answer === 1
    },
    pause: async ms => {
      // Kept locally too, so the pause survives Redis failing right after.
      await fallback.pause(ms)
      await link.run(() => pauseScript([pauseKey], [Math.ceil(ms)]))
    }
  }
}
