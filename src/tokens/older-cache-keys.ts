import type { Clock } from '../deadline.js'
import { REDIS_UNAVAILABLE, type RedisLink } from '../redis/connection.js'
import type { CacheCrypto } from './cache-crypto.js'
import type { MintedToken } from '../hubspot/client.js'
import { type CacheKey, type TokenStore, usableToken } from './token-cache.js'

export interface OlderCacheKeysOptions {
  link: RedisLink
  crypto: CacheCrypto
  ttlMs: number
  clock: Clock
}

/**
 * Keeps the shared cache readable across a change of its key material (CACHE_KEY, or the HubSpot token
 * it derives from without one). The Redis store names and seals everything with the newest key; this
 * adds, for an identity it misses, one read of the names the older keys give, and makes a logout
 * delete those names too. Entries there are never written again, so they simply expire.
 *
 * The names are the Redis store's (`<prefix>tok:<hash>`, `<prefix>gen:<hash>`). A logout recorded under
 * the newest name (its generation key exists) makes the older entries count as gone: one of them may
 * have been written before that logout by a replica still on the old key, or have escaped a logout
 * kept while Redis was away (those are replayed under the newest name only).
 */
export function withOlderCacheKeys (store: TokenStore, options: OlderCacheKeysOptions): TokenStore {
  const { link, crypto, ttlMs, clock } = options
  const tokenKey = (hash: string): string => `${link.keyPrefix}tok:${hash}`
  const generationKey = (hash: string): string => `${link.keyPrefix}gen:${hash}`

  /** The token under an older key's names, unless a logout was recorded under the newest one. */
  async function lookupOlder (key: CacheKey): Promise<MintedToken | undefined> {
    const older = crypto.olderEmailHashes(key.email)
    if (older.length === 0) return undefined
    const names = older.map(tokenKey)
    const values = await link.run(redis => redis.mgetBuffer(generationKey(crypto.emailHash(key.email)), ...names))
    if (values === REDIS_UNAVAILABLE || values[0] !== null) return undefined
    for (const [i, sealed] of values.slice(1).entries()) {
      if (sealed === null) continue
      const token = usableToken(crypto.open(names[i]!, sealed), key, ttlMs, clock)
      if (token !== undefined) return token
    }
    return undefined
  }

  return {
    lookup: async key => await store.lookup(key) ?? await lookupOlder(key),
    lookupCounting: async (key, counter) => {
      const found = await store.lookupCounting(key, counter)
      return found.token !== undefined ? found : { token: await lookupOlder(key), count: found.count }
    },
    mintOnce: (key, deadline, mint) => store.mintOnce(key, deadline, mint),
    forget: async email => {
      await store.forget(email)
      const older = crypto.olderEmailHashes(email)
      if (older.length > 0) await link.run(redis => redis.del(...older.map(tokenKey)), { write: true })
    }
  }
}
