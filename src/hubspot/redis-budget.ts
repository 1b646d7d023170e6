import { randomBytes } from 'node:crypto'
import type { RateBudget } from '../config/types.js'
import type { Clock } from '../deadline.js'
import { REDIS_UNAVAILABLE, type RedisLink } from '../redis/connection.js'
import { type OutboundBudget, createMemoryBudget, slotSpacingMs, windowWithMarginMs } from './outbound-budget.js'
import { RecentGrants } from './recent-grants.js'

/**
 * The same reservation algorithm as SlidingLog, in one atomic script over a sorted set of reservation
 * times. Time comes from Redis (`TIME`), so the replicas' clocks do not matter. Scores may lie in the
 * future (reserved, not yet sent); the 429 pause lives in a second key checked by the same script.
 * Needs Redis 5 or later (scripts replicated by effects, so `TIME` may precede writes).
 *
 * KEYS: budget zset, pause key. ARGV: max, windowMs, unique member, maxWaitMs, spacingMs.
 * Returns { granted (1/0), waitMs, calls in the window, ms from now to the newest of them }: the last
 * two are what a replica knows of the shared window should Redis fail next.
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
if wait > tonumber(ARGV[4]) then
  local newestIn = 0
  if size > 0 then newestIn = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]) - now end
  return {0, tostring(wait), size, tostring(newestIn)}
end
redis.call('ZADD', KEYS[1], at, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(wait + window))
return {1, tostring(wait), size + 1, tostring(wait)}`

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

/**
 * What a replica did while Redis was unusable, added to the shared log when Redis is back: its calls
 * (ARGV pairs: ms relative to now, member) and the rest of a 429 pause it could not share, with the
 * slots Redis granted it lately (NX: a member Redis still has keeps its score).
 * KEYS: budget zset, pause key. ARGV: windowMs, pauseMs, then the pairs.
 */
const replayLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local pause = tonumber(ARGV[2])
if pause > 0 and redis.call('PTTL', KEYS[2]) < pause then redis.call('SET', KEYS[2], '1', 'PX', pause) end
for i = 3, #ARGV, 2 do redis.call('ZADD', KEYS[1], 'NX', now + tonumber(ARGV[i]), ARGV[i + 1]) end
if #ARGV > 2 and redis.call('PTTL', KEYS[1]) < window then redis.call('PEXPIRE', KEYS[1], window) end
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

/**
 * Around a Redis outage the budget must not exceed HubSpot's window either way:
 * - When Redis becomes unusable, the fallback (`max / replicas`) starts from what the shared window
 *   held when this replica last saw it: that many calls, all taken as made at the latest moment they
 *   can have been (now, or the newest slot if later). A full window therefore stays full for the
 *   fallback for a whole window, instead of the fallback starting empty and sending a second window's
 *   worth into HubSpot's current one.
 * - When Redis is back, the replica adds the calls it made meanwhile, and the rest of any 429 pause it
 *   could only keep locally, to the shared log, so the window counts them.
 */
export function createRedisBudget (options: RedisBudgetOptions): OutboundBudget {
  const { link, budget, clock } = options
  const windowMs = windowWithMarginMs(budget.windowMs)
  const spacingMs = slotSpacingMs(budget)
  const budgetKey = `${link.keyPrefix}budget`
  const pauseKey = `${link.keyPrefix}backoff`
  const reserveScript = link.defineScript('chatTokenReserveSlot', 2, reserveLua)
  const confirmScript = link.defineScript('chatTokenConfirmSlot', 2, confirmLua)
  const pauseScript = link.defineScript('chatTokenPause', 1, pauseLua)
  const replayScript = link.defineScript('chatTokenReplayBudget', 2, replayLua)
  const fallback = createMemoryBudget({ max: Math.max(1, Math.floor(budget.max / options.replicas)), windowMs: budget.windowMs }, clock)
  const memberPrefix = `r${randomBytes(6).toString('base64url')}:`
  let counter = 0
  /** The shared window as last seen (its newest call on this process's clock); cleared once the fallback starts from it. */
  let lastSeen: { calls: number; newestAt: number } | undefined
  const grants = new RecentGrants(windowMs, budget.max * 2)

  link.onUp(() => {
    const now = clock.now()
    const args: Array<string | number> = [windowMs, Math.ceil(fallback.log.pausedForMs(now))]
    for (const entry of fallback.log.entries(now)) {
      // Calls that stood for the shared window as last seen are in Redis already.
      if (!entry.assumed) args.push(entry.at - now, `${memberPrefix}f${entry.ticket}`)
    }
    // A failover may have lost them (see RecentGrants); those Redis still has are left as they are.
    for (const grant of grants.entries(now)) args.push(grant.at - now, grant.member)
    if (args.length > 2 || Number(args[1]) > 0) void link.run(() => replayScript([budgetKey, pauseKey], args))
  })

  function fallbackNow (): typeof fallback {
    if (lastSeen !== undefined) {
      // A caller later than its slot moves its entry to the moment it calls, so the shared calls may
      // be as late as now, not only as late as the newest slot seen.
      fallback.log.assumeCalls(lastSeen.calls, Math.max(clock.now(), lastSeen.newestAt))
      lastSeen = undefined
    }
    return fallback
  }

  return {
    reserve: async maxWaitMs => {
      const member = `${memberPrefix}${++counter}`
      const answer = await link.run(() => reserveScript([budgetKey, pauseKey], [budget.max, windowMs, member, Math.floor(maxWaitMs), spacingMs]))
      if (answer === REDIS_UNAVAILABLE) return fallbackNow().reserve(maxWaitMs)
      // Lua would truncate a fractional number to an integer reply: those come back as strings.
      const [granted, waitMs, calls, newestIn] = answer as [number, string, number, string]
      lastSeen = { calls, newestAt: clock.now() + Number(newestIn) }
      if (granted === 1) grants.record(member, clock.now() + Number(waitMs))
      return { granted: granted === 1, waitMs: Number(waitMs), ticket: member }
    },
    confirm: async (ticket, moveToNow) => {
      // A memory ticket (reserved while Redis was down) confirms against memory.
      if (!ticket.startsWith(memberPrefix)) return fallback.confirm(ticket, moveToNow)
      const answer = await link.run(() => confirmScript([budgetKey, pauseKey], [budget.max, windowMs, ticket, moveToNow ? 1 : 0]))
      return answer === REDIS_UNAVAILABLE ? fallbackNow().confirm(ticket, moveToNow) : answer === 1
    },
    pause: async ms => {
      // Kept locally too, so the pause survives Redis failing right after.
      await fallback.pause(ms)
      await link.run(() => pauseScript([pauseKey], [Math.ceil(ms)]))
    }
  }
}
