import { randomBytes } from 'node:crypto'
import Fastify from 'fastify'
import type { Identity, SessionClaims } from '../auth/identity.js'
import { sessionAuth } from '../auth/session.js'
import type { Config } from '../config/types.js'
import { type ErrorCode, isServiceError } from '../errors.js'
import { createEmailHasher } from '../logging.js'
import { checkResult, type CheckResult } from './check.js'

const NAME = 'session'

/** The session check's result, and the user-directory lookup it made, if any. */
export interface SessionOutcome {
  result: CheckResult
  lookup: { subject: string; error: string | undefined } | undefined
}

const hints: Partial<Record<ErrorCode, string>> = {
  missing_token: 'The value given to --jwt is empty.',
  invalid_token: 'Check the signing key (JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL), JWT_ALGORITHMS, JWT_ISSUER and JWT_AUDIENCE against the token\'s header and claims.',
  token_expired: 'Sign in again and give a fresh token (JWT_CLOCK_TOLERANCE_S allows for clock skew).',
  email_not_verified: 'The identity provider says the email is not verified (or does not say so while REQUIRE_EMAIL_VERIFIED=true).',
  email_missing: 'Set EMAIL_CLAIM to the claim that holds the email, or USER_LOOKUP_URL to look the subject up.',
  user_lookup_failed: 'Check USER_LOOKUP_URL and USER_LOOKUP_AUTH, and that the directory knows this subject.',
  upstream_unavailable: 'The signing keys could not be fetched: see the jwks check.'
}

/**
 * Verifies a session token exactly as the service does: the service's own session stage (on a private
 * Fastify instance that never listens, with nothing but that plugin), which maps the claims to an
 * identity and asks the user directory when the token carries a subject instead of an email.
 */
export async function checkSession (config: Config, jwt: string | undefined): Promise<SessionOutcome> {
  if (jwt === undefined) {
    return { result: checkResult(NAME, 'skip', 'no --jwt given: session verification not tried'), lookup: undefined }
  }
  const header = tokenHeader(jwt)
  const app = Fastify({ logger: false })
  let claims: SessionClaims | undefined
  let identity: Identity | undefined
  let lookup: SessionOutcome['lookup']
  let failure: unknown
  try {
    // The hash only keys this throwaway instance's per-caller counters, which it never uses.
    await app.register(sessionAuth, { jwt: config.jwt, identity: config.identity, userLookup: config.userLookup, hashEmail: createEmailHasher(randomBytes(32).toString('base64')) })
    app.get('/', async request => {
      try {
        const { context } = await app.verifySession(request)
        claims = context.claims
        if (context.subject.kind === 'lookup') lookup = { subject: context.subject.subject, error: undefined }
        identity = (await app.visitorOf(context, config.userLookup?.timeoutMs ?? 0)).identity
      } catch (error) {
        if (lookup !== undefined && identity === undefined) lookup.error = isServiceError(error) ? error.message : String(error)
        failure = error
      }
      return ''
    })
    await app.inject({ method: 'GET', url: '/', headers: { authorization: `Bearer ${jwt}` } })
  } finally {
    await app.close()
  }

  const facts: Record<string, unknown> = { alg: header.alg, kid: header.kid, ...claimFacts(claims) }
  if (identity === undefined) {
    const code = isServiceError(failure) ? failure.code : undefined
    const detail = isServiceError(failure) ? failure.message : String(failure)
    return {
      result: checkResult(NAME, 'fail', `the session token is refused: ${code ?? 'error'} (${detail})`, code === undefined || hints[code] === undefined ? [] : [hints[code]!], { ...facts, code }),
      lookup
    }
  }
  const names = [identity.firstName === undefined ? undefined : `first name "${identity.firstName}"`, identity.lastName === undefined ? undefined : `last name "${identity.lastName}"`]
    .filter(name => name !== undefined)
  const from = lookup === undefined ? 'from its claims' : `from the user directory (subject "${lookup.subject}")`
  return {
    result: checkResult(NAME, 'ok', `the session token is valid and maps to ${identity.email}${names.length === 0 ? '' : `, ${names.join(', ')}`} (${from})`,
      [`Signed with ${String(header.alg)}${header.kid === undefined ? '' : ` (key "${String(header.kid)}")`}${typeof facts.expiresAt === 'string' ? `; expires ${facts.expiresAt}` : ''}.`],
      { ...facts, email: identity.email, firstName: identity.firstName, lastName: identity.lastName, source: lookup === undefined ? 'claims' : 'directory' }),
    lookup
  }
}

/** The token's header (alg, kid): public, and what a mismatch is usually about. */
function tokenHeader (jwt: string): { alg?: unknown; kid?: unknown } {
  try {
    const header: unknown = JSON.parse(Buffer.from(jwt.split('.', 1)[0] ?? '', 'base64url').toString('utf8'))
    return typeof header === 'object' && header !== null ? header as { alg?: unknown; kid?: unknown } : {}
  } catch {
    return {}
  }
}

function claimFacts (claims: SessionClaims | undefined): Record<string, unknown> {
  if (claims === undefined) return {}
  const exp = claims.exp
  return {
    issuer: claims.iss,
    audience: claims.aud,
    subject: claims.sub,
    expiresAt: typeof exp === 'number' ? new Date(exp * 1000).toISOString() : undefined
  }
}
