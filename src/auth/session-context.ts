import type { IdentityConfig } from '../config/types.js'
import { type ErrorCode, ServiceError, isServiceError } from '../errors.js'
import { normaliseEmail } from './email.js'
import { claimValue, type Identity, identityFromClaims, type IdentityKey, identityKey, type SessionClaims } from './identity.js'

/** A person the service may mint for, with the keys that name them, each worked out once. */
export interface Visitor {
  /** Exactly what HubSpot is sent. */
  readonly identity: Identity
  /** The token cache's key for this identity. */
  readonly key: IdentityKey
  /** Keyed hash of the email, for the request's log line (emails are personal data). */
  readonly emailHash: string
}

/** Who a verified session speaks for, as far as its claims alone can say. */
export type SessionSubject =
  | { readonly kind: 'visitor'; readonly visitor: Visitor }
  /** No email in the claims, and a user directory is configured: it is asked on each request. */
  | { readonly kind: 'lookup'; readonly subject: string; readonly names: Omit<Identity, 'email'> }
  /** The claims name nobody usable (no email, unverified email...): refused after the per-caller limit. */
  | { readonly kind: 'refused'; readonly code: ErrorCode; readonly detail: string }

/**
 * Everything the service derives from one verified session token, once per token: a browser sends the
 * same token on every page load, and the verified-token cache hands this same object back each time.
 * Immutable, so sharing it between requests is safe.
 */
export interface SessionContext {
  readonly claims: Readonly<SessionClaims>
  /** The per-caller rate limit's key (see callerKeyFor). */
  readonly callerKey: string
  readonly subject: SessionSubject
}

export interface SessionContextSettings {
  identity: IdentityConfig
  /** A user directory is configured for sessions that carry a subject but no email. */
  canLookup: boolean
  /** Keyed hash for emails and subjects (logging.ts createRotatingEmailHasher). */
  hashEmail: (value: string) => string
}

export function createSessionContext (claims: SessionClaims, settings: SessionContextSettings): SessionContext {
  const frozen = Object.freeze(claims)
  return Object.freeze({ claims: frozen, callerKey: callerKeyFor(frozen, settings), subject: subjectOf(frozen, settings) })
}

/** The visitor for an identity that did not come from the claims alone (a user-directory answer). */
export function visitorFor (identity: Identity, hashEmail: (value: string) => string): Visitor {
  return { identity, key: identityKey(identity), emailHash: hashEmail(identity.email) }
}

/**
 * The session's subject; else its email, normalised exactly as the identity mapping will (so no spelling
 * of one address is another caller); else one key for every session that has neither (those can only
 * be refused, 422, at no cost). Never the client IP once the session is verified: many people share
 * one address behind a NAT or a proxy.
 */
function callerKeyFor (claims: SessionClaims, settings: SessionContextSettings): string {
  const subject = claims.sub
  if (typeof subject === 'string' && subject !== '') return `s:${settings.hashEmail(`sub\u0000${subject}`)}`
  const email = normaliseEmail(claimValue(claims, settings.identity.emailClaim))
  return email === undefined ? 'n:' : `e:${settings.hashEmail(`email\u0000${email}`)}`
}

function subjectOf (claims: SessionClaims, settings: SessionContextSettings): SessionSubject {
  try {
    const resolution = identityFromClaims(claims, settings.identity, settings.canLookup)
    if (resolution.kind === 'lookup') return Object.freeze({ kind: 'lookup', subject: resolution.subject, names: Object.freeze(resolution.names) })
    const identity = Object.freeze(resolution.identity)
    return Object.freeze({ kind: 'visitor', visitor: Object.freeze(visitorFor(identity, settings.hashEmail)) })
  } catch (error) {
    if (!isServiceError(error)) throw error
    return Object.freeze({ kind: 'refused', code: error.code, detail: error.message })
  }
}

/** The refusal a session's claims earned, as the error the route answers with. */
export function refusalOf (subject: Extract<SessionSubject, { kind: 'refused' }>): ServiceError {
  return new ServiceError(subject.code, subject.detail)
}
