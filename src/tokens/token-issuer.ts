import type { FastifyBaseLogger } from 'fastify'
import type { Identity } from '../auth/identity.js'
import type { MintedToken } from '../hubspot/client.js'

/** HubSpot accepts an identification token for 12 hours after it issued it. */
export const IDENTIFICATION_TOKEN_LIFETIME_MS = 12 * 60 * 60 * 1000

/**
 * Gives out identification tokens for identities. The route depends on this seam only; the caching
 * issuer (caching-issuer.ts) wraps the HubSpot call in cache, single-flight, breaker and budget.
 */
export interface TokenIssuer {
  /** `receivedAt` (clock ms, default now): when the request was read; its upstream budget counts from then. */
  tokenFor: (identity: Identity, log: FastifyBaseLogger, receivedAt?: number) => Promise<MintedToken>
  forget: (identity: Identity) => Promise<void>
}
