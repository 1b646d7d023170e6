import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../config/types.js'
import type { Clock } from '../deadline.js'
import type { ServiceEvents } from '../events.js'
import { createCacheCrypto } from './cache-crypto.js'
import { createCachingIssuer } from './caching-issuer.js'
import { createMemoryTokenStore } from './memory-token-store.js'
import { createMemoryMintAllowance, createRedisMintAllowance, withMintAllowance } from './mint-allowance.js'
import { withOlderCacheKeys } from './older-cache-keys.js'
import { defaultPendingForgetsFile, PendingForgets } from './pending-forgets.js'
import { createRedisTokenStore } from './redis-token-store.js'
import type { TokenIssuer } from './token-issuer.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Identification tokens for visitors: cached, minted once per identity, forgotten on logout. */
    tokenIssuer: TokenIssuer
  }
}

export interface TokenStageOptions {
  config: Config
  clock: Clock
  random?: () => number
  events: ServiceEvents
  /** The cache's key material as it stands now, newest first (cache-keyring.ts). */
  cacheKeys: () => readonly string[]
}

/** A lock outlives its holder's whole deadline by this much. */
const LOCK_MARGIN_MS = 1000
/** Logouts waiting for Redis, at most; beyond this many the oldest are dropped. */
const MAX_PENDING_FORGETS = 10_000

/**
 * The token cache and its issuer, in front of the HubSpot stage: in memory without REDIS_URL, else in
 * Redis (encrypted, shared by every replica) with memory as the fallback while Redis is away.
 */
async function tokenStagePlugin (app: FastifyInstance, options: TokenStageOptions): Promise<void> {
  const { config, clock, events } = options
  const { timeoutMs } = config.hubspot
  const ttlMs = config.tokenCache.ttlS * 1000
  const redis = app.redis
  // Set whenever app.redis is: the shared-state stage connects to it.
  const redisUrl = config.redisUrl
  const memory = createMemoryTokenStore({ maxEntries: config.tokenCache.maxEntries, ttlMs, clock })
  const crypto = createCacheCrypto(options.cacheKeys)
  const store = redis === undefined || redisUrl === undefined
    ? memory
    : withOlderCacheKeys(createRedisTokenStore({
      link: redis,
      crypto,
      fallback: memory,
      ttlMs,
      lockTtlMs: timeoutMs + LOCK_MARGIN_MS,
      pendingForgets: new PendingForgets({
        file: defaultPendingForgetsFile(redisUrl, redis.keyPrefix),
        maxAgeMs: ttlMs,
        maxEntries: MAX_PENDING_FORGETS,
        clock,
        onFileError: error => app.log.warn({ err: error }, 'pending logouts cannot be kept on disk: a restart during a Redis outage forgets them')
      }),
      clock,
      random: options.random
    }), { link: redis, crypto, ttlMs, clock })
  const mintLimit = config.tokenCache.mintLimit
  const mints = redis === undefined
    ? createMemoryMintAllowance(mintLimit, clock)
    : createRedisMintAllowance({ link: redis, crypto, limit: mintLimit, clock })
  app.decorate('tokenIssuer', createCachingIssuer({ hubspot: withMintAllowance(app.hubspot, mints), store, timeoutMs, clock, events }))
}

export const tokenStage = fp(tokenStagePlugin, { name: 'tokens', fastify: '5.x', dependencies: ['shared-state', 'hubspot'] })
