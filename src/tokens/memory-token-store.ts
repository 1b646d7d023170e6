import type { Clock } from '../deadline.js'
import type { MintedToken } from '../hubspot/client.js'
import { type CachedToken, type CacheKey, type TokenStore, usableToken } from './token-cache.js'
import { setWithinLimit } from '../bounded-map.js'

export interface MemoryTokenStoreOptions {
  maxEntries: number
  ttlMs: number
  clock: Clock
}

/** One mint of a token for one email, minted outside `mintOnce` (by the Redis store). */
export interface MintTicket {
  /** Caches the token, unless forget() or clear() ran since the ticket was taken: a logout always wins. */
  keep: (key: CacheKey, minted: MintedToken) => void
  /** The mint is over, kept or not. */
  close: () => void
}

export interface MemoryTokenStore extends TokenStore {
  readonly size: number
  /** Taken before a mint starts elsewhere, so a logout during the mint keeps its token out of the cache. */
  startMint: (email: string) => MintTicket
  /** Forgets every entry, and every token still being minted. */
  clear: () => void
}

/** Twelve characters (see identityFingerprint), then the time it was issued in base 36, then the token. */
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
  /** Mints in progress by email, each marked when a logout for that email comes in meanwhile. */
  const minting = new Map<string, Set<{ forgotten: boolean }>>()

  function startMint (email: string): MintTicket {
    const mint = { forgotten: false }
    const sameEmail = minting.get(email) ?? new Set()
    sameEmail.add(mint)
    minting.set(email, sameEmail)
    return {
      keep: (key, minted) => { if (!mint.forgotten) remember(key, minted) },
      close: () => {
        const current = minting.get(email)
        current?.delete(mint)
        if (current?.size === 0) minting.delete(email)
      }
    }
  }

  function remember (key: CacheKey, minted: MintedToken): void {
    // join() builds a flat string; concatenation would keep a rope of the three parts alive.
    const packed = [key.fingerprint, minted.issuedAt.toString(36).padStart(ISSUED_AT_CHARS, '0'), minted.token].join('')
    entries.delete(key.email)
    setWithinLimit(entries, key.email, packed, maxEntries)
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
    // Nothing here counts callers: the caller limit counts in process memory itself.
    lookupCounting: async key => ({ token: lookupNow(key), count: undefined }),
    startMint,
    // In-process single-flight is the caching issuer's job; here there is no one else to coordinate with. Another
    // flight may have filled the entry since the caller looked (the Redis store's fallback is such a caller).
    mintOnce: async (key, _deadline, mint) => {
      const cached = lookupNow(key)
      if (cached !== undefined) return cached
      const ticket = startMint(key.email)
      try {
        const minted = await mint()
        ticket.keep(key, minted)
        return minted
      } finally {
        ticket.close()
      }
    },
    forget: async email => {
      entries.delete(email)
      for (const mint of minting.get(email) ?? []) mint.forgotten = true
    },
    clear: () => {
      entries.clear()
      for (const sameEmail of minting.values()) for (const mint of sameEmail) mint.forgotten = true
    }
  }
}
