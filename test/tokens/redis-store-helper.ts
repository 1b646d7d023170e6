import { systemClock } from '../../src/deadline.js'
import { noServiceEvents } from '../../src/events.js'
import { connectRedis, type RedisLink } from '../../src/redis/connection.js'
import { type CacheCrypto, createCacheCrypto } from '../../src/tokens/cache-crypto.js'
import { createMemoryTokenStore } from '../../src/tokens/memory-token-store.js'
import { PendingForgets } from '../../src/tokens/pending-forgets.js'
import { createRedisTokenStore } from '../../src/tokens/redis-token-store.js'
import type { TokenStore } from '../../src/tokens/token-cache.js'
import { silentLog } from '../redis-helper.js'

/** One replica's Redis token store, without the rest of the service: its link, and its logouts kept for later. */
export interface StoreReplica {
  link: RedisLink
  store: TokenStore
  crypto: CacheCrypto
  pending: PendingForgets
}

const TTL_MS = 60_000

/**
 * Connects to `url` under `prefix` (closed at teardown) and builds the store on it. Every replica built
 * here shares one cache key, so they read each other's entries; logouts kept for later stay in memory.
 */
export async function storeReplica (t: { teardown: (fn: () => unknown) => void }, url: string, prefix: string, options: { lockTtlMs?: number } = {}): Promise<StoreReplica> {
  const link = await connectRedis({ url, keyPrefix: prefix, log: silentLog, events: noServiceEvents, clock: systemClock })
  t.teardown(() => link.close())
  if (!await link.waitUntilUp(5000)) throw new Error(`Redis at ${url} did not answer`)
  const crypto = createCacheCrypto('a-cache-key-for-these-tests-only-0123456789')
  const pending = new PendingForgets({ file: undefined, maxAgeMs: TTL_MS, maxEntries: 100, clock: systemClock, onFileError: () => {} })
  const store = createRedisTokenStore({
    link,
    crypto,
    fallback: createMemoryTokenStore({ maxEntries: 100, ttlMs: TTL_MS, clock: systemClock }),
    ttlMs: TTL_MS,
    lockTtlMs: options.lockTtlMs ?? 10_000,
    pendingForgets: pending,
    clock: systemClock
  })
  return { link, store, crypto, pending }
}
