import type { FastifyBaseLogger } from 'fastify'
import type { Visitor } from '../auth/session-context.js'
import type { MintedToken } from '../hubspot/client.js'

/** HubSpot accepts an identification token for 12 hours after it issued it. */
export const IDENTIFICATION_TOKEN_LIFETIME_MS = 12 * 60 * 60 * 1000

/**
 * Gives out identification tokens for identities. The route depends on this seam only; the caching
 * issuer (caching-issuer.ts) wraps the HubSpot call in cache, single-flight, breaker and budget.
 */
export interface TokenIssuer {
  /** `receivedAt` (clock ms, default now): when the request was read; its upstream budget counts from then. */
  tokenFor: (visitor: Visitor, log: FastifyBaseLogger, receivedAt?: number) => Promise<MintedToken>
  /** Logout: the visitor's email's token is dropped, and a mint for it in flight is not cached. */
  forget: (visitor: Visitor) => Promise<void>
}
