import type { FastifyBaseLogger } from 'fastify'
import type { Identity } from '../auth/identity.js'
import { type Clock, Deadline, systemClock } from '../deadline.js'
import type { HubSpotClient, MintedToken } from '../hubspot/client.js'

/** HubSpot accepts an identification token for 12 hours after it issued it. */
export const IDENTIFICATION_TOKEN_LIFETIME_MS = 12 * 60 * 60 * 1000

/**
 * Gives out identification tokens for identities. The route depends on this seam only, so caching,
 * single-flight and rate budgets can wrap the HubSpot call without the route changing.
 */
export interface TokenIssuer {
  tokenFor: (identity: Identity, log: FastifyBaseLogger) => Promise<MintedToken>
  forget: (identity: Identity) => Promise<void>
}

/** Mints a fresh token on every call, within one HUBSPOT_TIMEOUT_MS deadline. */
export function createMintingIssuer (hubspot: HubSpotClient, timeoutMs: number, clock: Clock = systemClock): TokenIssuer {
  return {
    tokenFor: (identity, log) => hubspot.createVisitorToken(identity, new Deadline(timeoutMs, clock), log),
    forget: async () => {}
  }
}
