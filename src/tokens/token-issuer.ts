import type { FastifyBaseLogger } from 'fastify'
import type { Visitor } from '../auth/session-context.js'
import type { CallerCounter } from '../http/caller-limit.js'
import type { MintedToken } from '../hubspot/client.js'
import type { CacheLookup } from './token-cache.js'

/** HubSpot accepts an identification token for 12 hours after it issued it. */
export const IDENTIFICATION_TOKEN_LIFETIME_MS = 12 * 60 * 60 * 1000

/**
 * Gives out identification tokens for identities. The route depends on this seam only; the caching
 * issuer (caching-issuer.ts) wraps the HubSpot call in cache, single-flight, breaker and budget.
 */
export interface TokenIssuer {
  /**
   * Reads the visitor's cached token and counts the caller against `counter` in the same Redis round
   * trip (the count is undefined when that was not possible: the caller is still to be counted).
   */
  lookup: (visitor: Visitor, counter: CallerCounter) => Promise<CacheLookup>
  /**
   * The visitor's token: the cached one, or minted once. `looked`: what `lookup` found for this request
   * already, so the cache is not read twice. `receivedAt` (clock ms, default now): when the request was
   * read; its upstream budget counts from then.
   */
  tokenFor: (visitor: Visitor, log: FastifyBaseLogger, receivedAt?: number, looked?: CacheLookup) => Promise<MintedToken>
  /** Logout: the visitor's email's token is dropped, and a mint for it in flight is not cached. */
  forget: (visitor: Visitor) => Promise<void>
}
