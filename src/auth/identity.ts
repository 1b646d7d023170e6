import { hash } from 'node:crypto'
import type { IdentityConfig } from '../config/types.js'
import { ServiceError } from '../errors.js'
import { normaliseEmail } from './email.js'

/** The person a HubSpot identification token is minted for: exactly what is sent to HubSpot. */
export interface Identity {
  email: string
  firstName?: string
  lastName?: string
}

export type SessionClaims = Record<string, unknown>

/**
 * What names one identity exactly: its email (how the token cache and a logout find it) and a
 * fingerprint of everything sent to HubSpot (a cached token is reused only for the same names too).
 */
export interface IdentityKey {
  readonly email: string
  readonly fingerprint: string
}

export function identityKey (identity: Identity): IdentityKey {
  return { email: identity.email, fingerprint: identityFingerprint(identity) }
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

/** Either a complete identity, or the subject to look up in the user directory. */
export type ClaimsResolution =
  | { kind: 'identity'; identity: Identity }
  | { kind: 'lookup'; subject: string; names: Omit<Identity, 'email'> }

const MAX_NAME_LENGTH = 100
// eslint-disable-next-line no-control-regex
const controlCharacters = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

/**
 * Maps verified session claims to an identity, refusing anything doubtful. `canLookup` says whether a
 * user directory is configured for JWTs that carry no email.
 */
export function identityFromClaims (claims: SessionClaims, config: IdentityConfig, canLookup: boolean): ClaimsResolution {
  checkEmailVerified(claims.email_verified, config.requireEmailVerified)
  const names = namesFromClaims(claims, config)
  const rawEmail = claimValue(claims, config.emailClaim)

  if (rawEmail === undefined && canLookup) {
    const subject = claims.sub
    if (typeof subject !== 'string' || subject === '') {
      throw new ServiceError('email_missing', 'The session token has neither an email nor a subject to look up')
    }
    return { kind: 'lookup', subject, names }
  }
  const email = normaliseEmail(rawEmail)
  if (email === undefined) {
    throw new ServiceError('email_missing', rawEmail === undefined
      ? `The session token has no "${config.emailClaim}" claim`
      : `The "${config.emailClaim}" claim is not a usable email address`)
  }
  return { kind: 'identity', identity: { email, ...names } }
}

function checkEmailVerified (value: unknown, required: boolean): void {
  // Some identity providers (Cognito, for one) send the flag as a string.
  if (value === true || value === 'true') return
  if (value === undefined && !required) return
  throw new ServiceError('email_not_verified', value === undefined
    ? 'The session token does not say the email is verified'
    : 'The email of the session token is not verified')
}

/**
 * An exact key wins, so namespaced claims such as "https://example.com/email" work; otherwise the name
 * is read as a dotted path into nested objects.
 */
export function claimValue (claims: SessionClaims, name: string): unknown {
  if (Object.hasOwn(claims, name)) return claims[name]
  let current: unknown = claims
  for (const segment of name.split('.')) {
    if (typeof current !== 'object' || current === null || Array.isArray(current) || !Object.hasOwn(current, segment)) return undefined
    current = (current as Record<string, unknown>)[segment]
  }
  return current
}

function namesFromClaims (claims: SessionClaims, config: IdentityConfig): Omit<Identity, 'email'> {
  const names: Omit<Identity, 'email'> = {}
  const firstName = cleanName(claimValue(claims, config.firstNameClaim))
  const lastName = cleanName(claimValue(claims, config.lastNameClaim))
  if (firstName !== undefined) names.firstName = firstName
  if (lastName !== undefined) names.lastName = lastName
  return names
}

/** A name is optional: anything that is not a non-empty string after cleaning is dropped, not refused. */
export function cleanName (value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined
  const cleaned = value.replace(controlCharacters, '').trim()
  if (cleaned === '') return undefined
  return Array.from(cleaned).slice(0, MAX_NAME_LENGTH).join('')
}
