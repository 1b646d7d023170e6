import { randomBytes } from 'node:crypto'
import type { RateBudget } from '../config/types.js'
import type { Clock } from '../deadline.js'
import { ServiceError } from '../errors.js'
import type { HubSpotClient } from '../hubspot/client.js'
import { REDIS_UNAVAILABLE, type RedisLink } from '../redis/connection.js'
import type { CacheCrypto } from './cache-crypto.js'
import { setWithinLimit } from '../bounded-map.js'

/**
 * How many new tokens one person may cost per window (TOKEN_MINT_LIMIT, 10 an hour by default). The
 * cache makes a token per identity per TTL the normal cost; only a logout (DELETE) or a changed name
 * mints again. Without a bound, a DELETE + GET loop spends a HubSpot call per turn, and forty accounts
 * doing it at their per-caller rate fill the whole outbound budget. Past the limit the person gets 429
 * `rate_limited` with Retry-After: it is that caller's own excess, and nobody else's budget.
 *
 * Counted per normalised email in a rolling window, when the mint is about to happen (after the cache
 * and single-flight, so joined and cached requests cost nothing); a mint that brought no token gives
 * its count back. Shared through Redis (a sorted set per identity, keyed by the email's HMAC) and per
 * process without it or while Redis is unusable.
 */
export interface MintAllowance {
  /** Counts one mint for `email`, or throws 429 rate_limited with Retry-After. */
  take: (email: string) => Promise<MintTicket>
  /** The mint brought no token: it does not count. */
  giveBack: (ticket: MintTicket) => Promise<void>
}

export interface MintTicket {
  email: string
  at: number
  /** Set when the count is in Redis. */
  member?: string
}

/** Beyond this many identities in memory the one used longest ago is dropped. */
const MAX_LOCAL_IDENTITIES = 100_000

function refusal (retryInMs: number): ServiceError {
  return new ServiceError('rate_limited', 'Too many new chat tokens for this person recently (each logout and login mints one); retry later', {
    retryAfterS: Math.max(1, retryInMs) / 1000
  })
}

export function createMemoryMintAllowance (limit: RateBudget, clock: Clock): MintAllowance {
  /** Mint times per email, oldest first; the Map is kept in order of last use. */
  const mints = new Map<string, number[]>()
  return {
    take: async email => {
      const now = clock.now()
      const times = (mints.get(email) ?? []).filter(time => time > now - limit.windowMs)
      mints.delete(email)
      if (times.length >= limit.max) {
        mints.set(email, times)
        throw refusal(times[times.length - limit.max]! + limit.windowMs - now)
      }
      times.push(now)
      setWithinLimit(mints, email, times, MAX_LOCAL_IDENTITIES)
      return { email, at: now }
    },
    giveBack: async ticket => {
      const times = mints.get(ticket.email)
      const index = times?.lastIndexOf(ticket.at) ?? -1
      if (index !== -1) times!.splice(index, 1)
    }
  }
}

/**
 * KEYS: the identity's sorted set. ARGV: max, windowMs, now, member. Returns { granted (1/0), retryInMs }.
 * The replicas' own clocks: an hour's window does not mind their few milliseconds of skew.
 */
const takeLua = `
local max = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= max then
  local limiting = redis.call('ZRANGE', KEYS[1], count - max, count - max, 'WITHSCORES')
  return {0, tostring(tonumber(limiting[2]) + window - now)}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return {1, '0'}`

export interface RedisMintAllowanceOptions {
  link: RedisLink
  crypto: CacheCrypto
  limit: RateBudget
  clock: Clock
}

export function createRedisMintAllowance (options: RedisMintAllowanceOptions): MintAllowance {
  const { link, crypto, limit, clock } = options
  const takeScript = link.defineScript('chatTokenTakeMint', 1, takeLua)
  const fallback = createMemoryMintAllowance(limit, clock)
  const memberPrefix = `m${randomBytes(6).toString('base64url')}:`
  const keyFor = (email: string): string => `${link.keyPrefix}mint:${crypto.emailHash(email)}`
  let counter = 0

  return {
    take: async email => {
      const now = clock.now()
      const member = `${memberPrefix}${++counter}`
      const answer = await link.run(() => takeScript([keyFor(email)], [limit.max, limit.windowMs, now, member]))
      if (answer === REDIS_UNAVAILABLE) return fallback.take(email)
      const [granted, retryInMs] = answer as [number, string]
      if (granted !== 1) throw refusal(Number(retryInMs))
      return { email, at: now, member }
    },
    giveBack: async ticket => {
      if (ticket.member === undefined) return fallback.giveBack(ticket)
      const member = ticket.member
      await link.run(redis => redis.zrem(keyFor(ticket.email), member))
    }
  }
}

/** The HubSpot client as the token store sees it: every mint first counts against the person's allowance. */
export function withMintAllowance (hubspot: HubSpotClient, allowance: MintAllowance): HubSpotClient {
  return {
    ...hubspot,
    createVisitorToken: async (identity, deadline, log) => {
      const ticket = await allowance.take(identity.email)
      try {
        return await hubspot.createVisitorToken(identity, deadline, log)
      } catch (error) {
        void allowance.giveBack(ticket)
        throw error
      }
    }
  }
}
