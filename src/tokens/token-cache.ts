import type { IdentityKey } from '../auth/identity.js'
import type { CallerCounter } from '../http/caller-limit.js'
import type { CallerCount } from '../http/local-caller-counters.js'
import type { Clock, Deadline } from '../deadline.js'
import type { MintedToken } from '../hubspot/client.js'

/** A cached identification token and the identity it was minted for. */
export interface CachedToken extends MintedToken {
  fingerprint: string
}

/** Where a token for one identity is looked up: by email only, so DELETE can forget it without the names. */
export type CacheKey = IdentityKey

/**
 * What one cache read found; `count` is the caller's count when the same round trip also counted the
 * caller (Redis mode), undefined when the caller still has to be counted.
 */
export interface CacheLookup {
  token: MintedToken | undefined
  count: CallerCount | undefined
}

/**
 * Stores tokens and decides who mints: one store per mode (in-process memory, or Redis shared by every
 * replica with memory as its fallback).
 */
export interface TokenStore {
  /** A token for this exact identity that is still younger than the cache TTL. */
  lookup: (key: CacheKey) => Promise<MintedToken | undefined>
  /** lookup, counting the caller against `counter` in the same Redis round trip where it can. */
  lookupCounting: (key: CacheKey, counter: CallerCounter) => Promise<CacheLookup>
  /**
   * Mints once per identity and caches the token: calls `mint` as the only minter of this identity
   * (across replicas when the store is shared) and caches the result, or returns what the minter that
   * got there first produced.
   */
  mintOnce: (key: CacheKey, deadline: Deadline, mint: () => Promise<MintedToken>) => Promise<MintedToken>
  /** Forgets the email's token; a mint for it already in flight does not cache its token. */
  forget: (email: string) => Promise<void>
}

/** The token in `entry` when it may be handed out for `key` now, else undefined. */
export function usableToken (entry: CachedToken | undefined, key: CacheKey, ttlMs: number, clock: Clock): MintedToken | undefined {
  if (entry === undefined || entry.fingerprint !== key.fingerprint) return undefined
  // Another replica's clock may run a little ahead: a token "from the future" is simply young.
  return clock.now() - entry.issuedAt < ttlMs ? { token: entry.token, issuedAt: entry.issuedAt } : undefined
}
