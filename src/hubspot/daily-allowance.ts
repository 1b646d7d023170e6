import type { Clock } from '../deadline.js'
import { ServiceError } from '../errors.js'
import type { AccountDay } from './account-day.js'
import { REDIS_UNAVAILABLE, type RedisLink } from '../redis/connection.js'

/**
 * HubSpot's daily limit, seen from our side. Two things stop every HubSpot call until midnight in the
 * account's time zone (AccountDay):
 * - our own ceiling, HUBSPOT_DAILY_LIMIT calls per account day for the whole fleet (optional);
 * - a DAILY 429 from HubSpot, which pauses every replica until the reset instead of letting each miss
 *   find out again (the daily budget is the account's, shared with every other integration).
 * Either way a miss answers 503 upstream_unavailable with Retry-After until the reset, without a call.
 * Counted in Redis when configured (`<prefix>daily:<YYYY-MM-DD>`, the pause in `<prefix>daily-pause`),
 * per process otherwise.
 */
export interface DailyAllowance {
  /** Before a HubSpot call: counts it, or throws 503 upstream_unavailable. Undefined: nothing was counted. */
  take: () => Promise<DailyTicket | undefined>
  /** The counted call was not made after all. */
  giveBack: (ticket: DailyTicket | undefined) => Promise<void>
  /** HubSpot answered a DAILY 429: no replica calls for `ms`. */
  pause: (ms: number) => Promise<void>
}

export interface DailyTicket {
  date: string
  /** Counted in Redis (else in this process). */
  shared: boolean
}

function pausedError (ms: number): ServiceError {
  return new ServiceError('upstream_unavailable', 'HubSpot\'s daily API limit is used up; calls resume at midnight in the HubSpot account\'s time zone', { retryAfterS: ms / 1000 })
}

function ceilingError (ms: number): ServiceError {
  return new ServiceError('upstream_unavailable', 'Today\'s HubSpot calls (HUBSPOT_DAILY_LIMIT) are used up; calls resume at midnight in the HubSpot account\'s time zone', { retryAfterS: ms / 1000 })
}

/** One day's count in this process: the whole count in memory mode, the fallback's share in Redis mode. */
class LocalDay {
  date = ''
  count = 0
  limit = 0
  /** Counted here while Redis was unusable, not yet added to the shared count. */
  unsynced = 0

  start (date: string, count: number, limit: number): void {
    this.date = date
    this.count = count
    this.limit = limit
    this.unsynced = 0
  }
}

export interface DailyAllowanceOptions {
  /** HUBSPOT_DAILY_LIMIT; undefined = only HubSpot's own DAILY 429 pauses. */
  limit: number | undefined
  day: AccountDay
  clock: Clock
}

export function createMemoryDailyAllowance (options: DailyAllowanceOptions): DailyAllowance {
  const { limit, day, clock } = options
  const local = new LocalDay()
  let pausedUntil = 0
  return {
    take: async () => {
      const now = clock.now()
      if (now < pausedUntil) throw pausedError(pausedUntil - now)
      if (limit === undefined) return undefined
      const date = day.dateAt(now)
      if (local.date !== date) local.start(date, 0, limit)
      if (local.count >= local.limit) throw ceilingError(day.msUntilReset(now))
      local.count++
      return { date, shared: false }
    },
    giveBack: async ticket => {
      if (ticket !== undefined && ticket.date === local.date && local.count > 0) local.count--
    },
    pause: async ms => {
      pausedUntil = Math.max(pausedUntil, clock.now() + ms)
    }
  }
}

/**
 * KEYS: the day's count, the pause. ARGV: limit (0 = none), the count's TTL in ms.
 * Returns { granted (1/0), pausedMs, count (-1 when not counted) }.
 */
const takeLua = `
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return {0, paused, -1} end
local limit = tonumber(ARGV[1])
if limit == 0 then return {1, 0, -1} end
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= limit then return {0, 0, count} end
count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return {1, 0, count}`

const giveBackLua = `
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then return redis.call('DECR', KEYS[1]) end
return 0`

/** KEYS: the day's count. ARGV: calls made while Redis was away, the count's TTL in ms. */
const addLua = `
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return count`

/** Never shortens a pause another replica set. */
const pauseLua = `
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
return 1`

/** A day's count outlives the day by this much, so replicas whose clocks disagree near midnight still find it. */
const COUNT_TTL_MARGIN_MS = 60 * 60 * 1000

export interface RedisDailyAllowanceOptions extends DailyAllowanceOptions {
  link: RedisLink
  /** While Redis is unusable each replica keeps to its share of what was left (HUBSPOT_RATE_LIMIT_REPLICAS). */
  replicas: number
}

/**
 * While Redis is unusable a replica counts on its own, from the shared count it saw last, keeping to
 * its share of what was left that day; when Redis is back it adds what it counted meanwhile and
 * replays a DAILY pause it could not share, so the fleet's count and pause stay whole.
 */
export function createRedisDailyAllowance (options: RedisDailyAllowanceOptions): DailyAllowance {
  const { link, limit, day, clock, replicas } = options
  const countKey = (date: string): string => `${link.keyPrefix}daily:${date}`
  const pauseKey = `${link.keyPrefix}daily-pause`
  const takeScript = link.defineScript('chatTokenDailyTake', 2, takeLua)
  const giveBackScript = link.defineScript('chatTokenDailyGiveBack', 1, giveBackLua)
  const addScript = link.defineScript('chatTokenDailyAdd', 1, addLua)
  const pauseScript = link.defineScript('chatTokenDailyPause', 1, pauseLua)
  const local = new LocalDay()
  let lastSeen = { date: '', count: 0 }
  /** This replica's knowledge of the pause: checked first, and replayed when Redis comes back. */
  let pausedUntil = 0

  const countTtlMs = (now: number): number => Math.ceil(day.msUntilReset(now) + COUNT_TTL_MARGIN_MS)

  function takeLocally (now: number, date: string): DailyTicket | undefined {
    if (limit === undefined) return undefined
    if (local.date !== date) {
      const seen = lastSeen.date === date ? lastSeen.count : 0
      local.start(date, seen, seen + Math.floor(Math.max(0, limit - seen) / replicas))
    }
    if (local.count >= local.limit) throw ceilingError(day.msUntilReset(now))
    local.count++
    local.unsynced++
    return { date, shared: false }
  }

  async function replay (): Promise<void> {
    const now = clock.now()
    const pauseMs = Math.ceil(pausedUntil - now)
    if (pauseMs > 0) void link.run(() => pauseScript([pauseKey], [pauseMs]))
    const { date, unsynced } = local
    if (unsynced > 0 && date === day.dateAt(now)) {
      local.unsynced = 0
      const added = await link.run(() => addScript([countKey(date)], [unsynced, countTtlMs(now)]))
      if (added === REDIS_UNAVAILABLE) {
        local.unsynced += unsynced
        return
      }
    }
    // The next fallback starts again from the shared count it saw last.
    local.start('', 0, 0)
  }
  link.onUp(() => { void replay() })

  return {
    take: async () => {
      const now = clock.now()
      if (now < pausedUntil) throw pausedError(pausedUntil - now)
      const date = day.dateAt(now)
      const answer = await link.run(() => takeScript([countKey(date), pauseKey], [limit ?? 0, countTtlMs(now)]))
      if (answer === REDIS_UNAVAILABLE) return takeLocally(now, date)
      const [granted, pausedMs, count] = answer as [number, number, number]
      if (count >= 0) lastSeen = { date, count }
      if (granted === 1) return limit === undefined ? undefined : { date, shared: true }
      if (pausedMs > 0) {
        pausedUntil = Math.max(pausedUntil, now + pausedMs)
        throw pausedError(pausedMs)
      }
      throw ceilingError(day.msUntilReset(now))
    },
    giveBack: async ticket => {
      if (ticket === undefined) return
      if (!ticket.shared) {
        if (ticket.date === local.date && local.count > 0) {
          local.count--
          local.unsynced = Math.max(0, local.unsynced - 1)
        }
        return
      }
      await link.run(() => giveBackScript([countKey(ticket.date)], []))
    },
    pause: async ms => {
      // Kept here too: it is checked before Redis, and replayed should Redis miss it.
      pausedUntil = Math.max(pausedUntil, clock.now() + ms)
      await link.run(() => pauseScript([pauseKey], [Math.ceil(ms)]))
    }
  }
}
