import type { Clock } from '../deadline.js'
import type { MintedToken } from '../hubspot/client.js'
import { type CachedToken, type CacheKey, type TokenStore, usableToken } from './token-cache.js'

export interface MemoryTokenStoreOptions {
  maxEntries: number
  ttlMs: number
  clock: Clock
}

export interface MemoryTokenStore extends TokenStore {
  readonly size: number
  /** Caches a token minted elsewhere (the Redis store, when Redis refused the write). */
  remember: (key: CacheKey, minted: MintedToken) => void
  clear: () => void
}

/** Twelve characters (see identityFingerprint), then the issue time in base 36, then the token. */
const FINGERPRINT_CHARS = 12
const ISSUED_AT_CHARS = 9

/**
 * In-process token cache, bounded by an LRU. A Map keeps insertion order, so re-inserting on a hit
 * moves the entry to the young end and the first key is always the least recently used.
 * Each value is one flat string (fingerprint ‖ issue time ‖ token) instead of an object holding three
 * values: about 340 bytes an entry with a 200-character token, 100,000 entries in ~35 MB of heap.
 */
export function createMemoryTokenStore (options: MemoryTokenStoreOptions): MemoryTokenStore {
  const { maxEntries, ttlMs, clock } = options
  const entries = new Map<string, string>()

  function remember (key: CacheKey, minted: MintedToken): void {
    // join() builds a flat string; concatenation would keep a rope of the three parts alive.
    const packed = [key.fingerprint, minted.issuedAt.toString(36).padStart(ISSUED_AT_CHARS, '0'), minted.token].join('')
    entries.delete(key.email)
    entries.set(key.email, packed)
    if (entries.size > maxEntries) entries.delete(entries.keys().next().value!)
  }

  function lookupNow (key: CacheKey): MintedToken | undefined {
    const packed = entries.get(key.email)
    if (packed === undefined) return undefined
    const entry: CachedToken = {
      fingerprint: packed.slice(0, FINGERPRINT_CHARS),
      issuedAt: parseInt(packed.slice(FINGERPRINT_CHARS, FINGERPRINT_CHARS + ISSUED_AT_CHARS), 36),
      token: packed.slice(FINGERPRINT_CHARS + ISSUED_AT_CHARS)
    }
    const usable = usableToken(entry, key, ttlMs, clock)
    if (usable === undefined) {
      // Expired entries go at once; a fingerprint mismatch stays until the new token replaces it.
      if (clock.now() - entry.issuedAt >= ttlMs) entries.delete(key.email)
      return undefined
    }
    entries.delete(key.email)
    entries.set(key.email, packed)
    return usable
  }

  return {
    get size () {
      return entries.size
    },
    lookup: async key => lookupNow(key),
    remember,
    // In-process single-flight is the issuer's job; here there is no one else to coordinate with.
    fill: async (key, _deadline, mint) => {
      const minted = await mint()
      remember(key, minted)
      return minted
    },
    forget: async email => {
      entries.delete(email)
    },
    clear: () => entries.clear()
  }
}
