import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.js'
import type { Clock } from '../deadline.js'
import { AccountDay } from '../hubspot/account-day.js'
import type { AttemptGate, HubSpotClient } from '../hubspot/client.js'
import { connectRedis, type RedisLink } from '../redis/connection.js'
import type { ReadinessCheck } from '../routes/health.js'
import { createCacheCrypto } from './cache-crypto.js'
import { createCachingIssuer } from './caching-issuer.js'
import { CallTimeEstimate } from './call-time-estimate.js'
import { CircuitBreaker } from './circuit-breaker.js'
import { createMemoryDailyAllowance, createRedisDailyAllowance } from './daily-allowance.js'
import { createHubSpotGate } from './hubspot-gate.js'
import { createMemoryTokenStore } from './memory-token-store.js'
import { withOlderCacheKeys } from './older-cache-keys.js'
import { createMemoryMintAllowance, createRedisMintAllowance, withMintAllowance } from './mint-allowance.js'
import { createMemoryBudget, marginMs } from './outbound-budget.js'
import { defaultPendingForgetsFile, PendingForgets } from './pending-forgets.js'
import { createRedisBudget } from './redis-budget.js'
import { createRedisTokenStore } from './redis-token-store.js'
import type { TokenEvents } from './token-events.js'
import type { TokenIssuer } from './token-issuer.js'

export interface TokenServicesOptions {
  clock: Clock
  random?: () => number
  log: FastifyBaseLogger
  events: TokenEvents
  /** Prefix of every Redis key and channel; tests give each run its own. */
  redisKeyPrefix?: string
  /**
   * Where logouts that could not reach Redis are kept until they do, across restarts (default: a file
   * per Redis database and key prefix under the temporary directory; null keeps them in memory only).
   */
  pendingForgetsFile?: string | null
  /** The cache's key material as it stands now, newest first (cache-keyring.ts); default: the HubSpot token. */
  cacheKeys?: () => readonly string[]
}

export interface TokenServices {
  /** For createHubSpotClient: breaker and budget around every attempt. */
  gate: AttemptGate
  issuerFor: (hubspot: HubSpotClient) => TokenIssuer
  /** Present in Redis mode, for the per-caller rate limit's store. */
  redis: RedisLink | undefined
  /** For /readyz: `redis: 'ok' | 'degraded'` in Redis mode, with the reason when degraded. */
  checks: Record<string, ReadinessCheck>
  /** The HubSpot access token was replaced: a pause for refused credentials ends at once. */
  credentialsChanged: () => void
  close: () => Promise<void>
}

/** How long start-up waits for Redis, so the first requests already share state; after that it carries on without. */
const REDIS_STARTUP_WAIT_MS = 1000
/** A lock outlives its holder's whole deadline by this much. */
const LOCK_MARGIN_MS = 1000
/** Logouts waiting for Redis, at most; beyond this many the oldest are dropped. */
const MAX_PENDING_FORGETS = 10_000
/**
 * The longest a miss waits for a budget slot. A full burst of the budget spreads over at most 1 s
 * (slotSpacingMs), so a burst is still served; behind a budget that is simply spent, the caller hears
 * 503 with Retry-After at once instead of after most of its deadline.
 */
const MAX_SLOT_WAIT_MS = 1000

/** Memory mode without REDIS_URL, Redis mode (with per-process fallback) with it. */
export async function createTokenServices (config: Config, options: TokenServicesOptions): Promise<TokenServices> {
  const { clock, events } = options
  const { timeoutMs, rateLimit, rateLimitReplicas, dailyLimit } = config.hubspot
  const ttlMs = config.tokenCache.ttlS * 1000
  const memory = createMemoryTokenStore({ maxEntries: config.tokenCache.maxEntries, ttlMs, clock })
  const accountDay = new AccountDay(config.hubspot.accountTimeZone)

  const redis = config.redisUrl === undefined
    ? undefined
    : await connectRedis({ url: config.redisUrl, keyPrefix: options.redisKeyPrefix, log: options.log, events, clock })
  const crypto = createCacheCrypto(options.cacheKeys ?? config.hubspot.accessToken)
  const store = redis === undefined
    ? memory
    : withOlderCacheKeys(createRedisTokenStore({
      link: redis,
      crypto,
      fallback: memory,
      ttlMs,
      lockTtlMs: timeoutMs + LOCK_MARGIN_MS,
      pendingForgets: new PendingForgets({
        file: options.pendingForgetsFile === undefined
          ? defaultPendingForgetsFile(config.redisUrl!, redis.keyPrefix)
          : options.pendingForgetsFile ?? undefined,
        maxAgeMs: ttlMs,
        maxEntries: MAX_PENDING_FORGETS,
        clock,
        onFileError: error => options.log.warn({ err: error }, 'pending logouts cannot be kept on disk: a restart during a Redis outage forgets them')
      }),
      clock,
      random: options.random
    }), { link: redis, crypto, ttlMs, clock })
  const budget = redis === undefined
    ? createMemoryBudget(rateLimit, clock)
    : createRedisBudget({ link: redis, budget: rateLimit, replicas: rateLimitReplicas, clock })
  const daily = redis === undefined
    ? createMemoryDailyAllowance({ limit: dailyLimit, day: accountDay, clock })
    : createRedisDailyAllowance({ link: redis, limit: dailyLimit, day: accountDay, clock, replicas: rateLimitReplicas })
  const mintLimit = config.tokenCache.mintLimit
  const mints = redis === undefined
    ? createMemoryMintAllowance(mintLimit, clock)
    : createRedisMintAllowance({ link: redis, crypto, limit: mintLimit, clock })
  const breaker = new CircuitBreaker({ clock, events, probeTimeoutMs: timeoutMs })
  const gate = createHubSpotGate({
    breaker,
    budget,
    daily,
    // Before anything is known a call needs min(1 s, a fifth of the deadline); never more than half of it.
    callTime: new CallTimeEstimate({ floorMs: Math.min(1000, timeoutMs / 5), capMs: timeoutMs / 2 }),
    events,
    clock,
    windowMs: rateLimit.windowMs,
    maxSlotWaitMs: MAX_SLOT_WAIT_MS,
    lateToleranceMs: marginMs(rateLimit.windowMs) / 2
  })
  if (redis !== undefined) await redis.waitUntilUp(REDIS_STARTUP_WAIT_MS)

  return {
    gate,
    issuerFor: hubspot => createCachingIssuer({ hubspot: withMintAllowance(hubspot, mints), store, timeoutMs, clock, events }),
    redis,
    checks: redis === undefined
      ? {}
      : {
          redis: () => {
            const health = redis.health()
            return health.status === 'ok' ? 'ok' : { status: 'degraded', reason: `${health.reason}: ${health.detail}` }
          }
        },
    credentialsChanged: () => breaker.credentialsChanged(),
    close: async () => { await redis?.close() }
  }
}
