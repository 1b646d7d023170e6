import { hash } from 'node:crypto'
import type { Identity } from '../auth/identity.js'
import type { Clock, Deadline } from '../deadline.js'
import type { MintedToken } from '../hubspot/client.js'

/** A cached identification token and the identity it was minted for. */
export interface CachedToken extends MintedToken {
  fingerprint: string
}

/** Where a token for one identity is looked up: by email only, so DELETE can forget it without the names. */
export interface CacheKey {
  email: string
  /** The whole identity sent to HubSpot (email and names): a token is reused only for the same one. */
  fingerprint: string
}

/**
 * Stores tokens and decides who mints: one store per mode (in-process memory, or Redis shared by every
 * replica with memory as its fallback).
 */
export interface TokenStore {
  /** A token for this exact identity that is still younger than the cache TTL. */
  lookup: (key: CacheKey) => Promise<MintedToken | undefined>
  /**
   * Mints through `mint` as the only minter of this identity (across replicas when the store is shared)
   * and caches the result, or returns what the minter that got there first produced.
   */
  fill: (key: CacheKey, deadline: Deadline, mint: () => Promise<MintedToken>) => Promise<MintedToken>
  /** Forgets the email's token; a mint for it already in flight does not cache its token. */
  forget: (email: string) => Promise<void>
}

/**
 * Keys of identities that come back as the same object (the chat-token route reuses one frozen identity
 * per session token), so a cache hit does not hash the identity again. Only frozen identities: a
 * mutable one could change after its key was worked out.
 */
const keysByIdentity = new WeakMap<Identity, CacheKey>()

export function cacheKeyFor (identity: Identity): CacheKey {
  if (!Object.isFrozen(identity)) return { email: identity.email, fingerprint: identityFingerprint(identity) }
  let key = keysByIdentity.get(identity)
  if (key === undefined) {
    key = { email: identity.email, fingerprint: identityFingerprint(identity) }
    keysByIdentity.set(identity, key)
  }
  return key
}

/**
 * 72 bits of SHA-256 over the exact identity: it only tells apart the names one email has had, so
 * collisions are out of reach. It is stored only inside an encrypted cache value or in process memory,
 * so it need not be keyed. Twelve characters keep a cache entry small whatever the names' length (and
 * V8 copies a slice this short instead of keeping the whole digest string alive).
 */
export function identityFingerprint (identity: Identity): string {
  // crypto.hash: one call, no Hash object (a third of createHash's cost on input this short).
  return hash('sha256', JSON.stringify([identity.email, identity.firstName ?? null, identity.lastName ?? null]), 'base64url').slice(0, 12)
}

/** The token in `entry` when it may be handed out for `key` now, else undefined. */
export function usableToken (entry: CachedToken | undefined, key: CacheKey, ttlMs: number, clock: Clock): MintedToken | undefined {
  if (entry === undefined || entry.fingerprint !== key.fingerprint) return undefined
  // Another replica's clock may run a little ahead: a token "from the future" is simply young.
  return clock.now() - entry.issuedAt < ttlMs ? { token: entry.token, issuedAt: entry.issuedAt } : undefined
}
