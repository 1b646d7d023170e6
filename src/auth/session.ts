import fastifyCookie from '@fastify/cookie'
import fastifyJwt, { type FastifyJWTOptions, type TokenOrHeader } from '@fastify/jwt'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { IdentityConfig, JwtConfig, UserLookupConfig } from '../config/types.js'
import { ServiceError, isServiceError } from '../errors.js'
import type { ReadinessChecks } from '../readiness.js'
import { RotatingValue } from '../secrets/rotating-value.js'
import type { SessionClaims } from './identity.js'
import { JwksHealth, JwksKeyStore } from './jwks-key-store.js'
import { createSessionContext, refusalOf, type SessionContext, type Visitor, visitorFor } from './session-context.js'
import { SessionKeys } from './session-keys.js'
import { tokenShapeProblem } from './token-shape.js'
import { createUserDirectory } from './user-lookup.js'
import { VerifiedSessionCache } from './verified-session-cache.js'

/** Where the session JWT came from: cookie-borne sessions get an origin check (CSRF). */
export type SessionSource = 'header' | 'cookie'

export interface VerifiedSession {
  context: SessionContext
  source: SessionSource
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Finds, checks and verifies the request's session token: its context, or a ServiceError. */
    verifySession: (request: FastifyRequest) => Promise<VerifiedSession>
    /**
     * The person a verified session speaks for: from its claims, or from the user directory within
     * `budgetMs` (what is left of the request's deadline); a ServiceError when there is none.
     */
    visitorOf: (context: SessionContext, budgetMs: number) => Promise<Visitor>
  }
  interface FastifyRequest {
    sessionToken: string | null
  }
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: SessionClaims
    user: SessionClaims
  }
}

/** Session JWTs are small; anything bigger is refused before any parsing work. */
const MAX_SESSION_TOKEN_BYTES = 8192
/**
 * Verified tokens remembered until their exp, so a token is checked once, not on every request. It
 * replaces fast-jwt's own cache, which still hashed every token and let the shape check run each time.
 */
const VERIFIED_TOKEN_CACHE_SIZE = 20_000

const bearerPattern = /^Bearer[ \t]+(\S*)[ \t]*$/i

export interface SessionPluginOptions {
  jwt: JwtConfig
  identity: IdentityConfig
  /** USER_LOOKUP_*: where sessions that carry a subject but no email are looked up. */
  userLookup: UserLookupConfig | undefined
  /** Keyed hash for emails and subjects (logging.ts createRotatingEmailHasher). */
  hashEmail: (value: string) => string
  /** JWT_SECRET or JWT_PUBLIC_KEY as it stands after the latest rotation (default: the configured one, for good). */
  keyText?: RotatingValue<string>
  /** USER_LOOKUP_AUTH as it stands now (default: the configured one). */
  userLookupAuth?: RotatingValue<string | undefined>
  /** Where the JWKS fetches' health is reported (`jwks`), when the service has a /readyz. */
  readiness?: ReadinessChecks
}

async function sessionPlugin (fastify: FastifyInstance, settings: SessionPluginOptions): Promise<void> {
  const { jwt, keyText } = settings
  const cookieName = jwt.cookieName
  if (cookieName !== undefined) await fastify.register(fastifyCookie)
  const jwksHealth = jwt.key.kind === 'jwks' ? new JwksHealth() : undefined
  if (jwksHealth !== undefined) settings.readiness?.add('jwks', jwksHealth.check)
  const lookupAuth = settings.userLookupAuth
  const directory = settings.userLookup === undefined
    ? undefined
    : createUserDirectory(settings.userLookup, lookupAuth === undefined ? undefined : () => lookupAuth.current)
  if (directory !== undefined) fastify.addHook('onClose', () => directory.close())
  const contextSettings = { identity: settings.identity, canLookup: directory !== undefined, hashEmail: settings.hashEmail }

  const keys = sessionKeys(jwt, keyText)
  const secret = keyOption(jwt, keys, jwksHealth)
  const options: FastifyJWTOptions = {
    secret,
    verify: {
      algorithms: jwt.algorithms,
      clockTolerance: jwt.clockToleranceS * 1000,
      // A session JWT without exp would be valid for ever; fast-jwt checks iss/aud only when present.
      requiredClaims: ['exp', ...(jwt.issuers.length > 0 ? ['iss'] : []), ...(jwt.audiences.length > 0 ? ['aud'] : [])],
      ...(jwt.issuers.length > 0 ? { allowedIss: jwt.issuers } : {}),
      ...(jwt.audiences.length > 0 ? { allowedAud: jwt.audiences } : {}),
      // The token was already found (and its size and shape checked) by verifySession.
      extractToken: (request: FastifyRequest) => request.sessionToken ?? undefined
    },
    // The JWKS key callback needs the header (kid, alg), so decode the complete token there.
    decode: { complete: jwt.key.kind === 'jwks' }
  }
  await fastify.register(fastifyJwt, options)
  fastify.decorateRequest('sessionToken', null)
  const verified = new VerifiedSessionCache(VERIFIED_TOKEN_CACHE_SIZE)
  // A key taken out must stop verifying at once, also for sessions it verified before.
  keyText?.onChange(() => verified.clear())

  fastify.decorate('verifySession', async function verifySession (request: FastifyRequest): Promise<VerifiedSession> {
    const found = findSessionToken(request, cookieName)
    if (found.token.length > MAX_SESSION_TOKEN_BYTES) throw new ServiceError('invalid_token', 'The session token is too large')
    const known = verified.lookup(found.token)
    if (known.context !== undefined) return { context: known.context, source: found.source }
    request.sessionToken = checkShape(found.token)
    let claims: SessionClaims
    try {
      claims = await verifyWithAnyKey(request, keys?.older ?? [])
    } catch (error) {
      throw translateJwtError(error)
    }
    checkTimeClaims(claims)
    checkIssuedAt(claims.iat, jwt.clockToleranceS)
    return { context: verified.remember(known.key, createSessionContext(claims, contextSettings)), source: found.source }
  })

  fastify.decorate('visitorOf', async function visitorOf (context: SessionContext, budgetMs: number): Promise<Visitor> {
    const subject = context.subject
    switch (subject.kind) {
      case 'visitor': return subject.visitor
      case 'refused': throw refusalOf(subject)
      case 'lookup': {
        // Only a 'lookup' subject exists when a directory is configured (contextSettings.canLookup).
        if (directory === undefined) throw new ServiceError('internal_error', 'A user lookup was asked for without a user directory')
        return visitorFor({ ...subject.names, ...await directory.lookup(subject.subject, budgetMs) }, settings.hashEmail)
      }
    }
  })
}

function sessionKeys (jwt: JwtConfig, keyText: RotatingValue<string> | undefined): SessionKeys | undefined {
  switch (jwt.key.kind) {
    case 'secret':
    case 'public-key':
      return new SessionKeys(keyText ?? new RotatingValue(jwt.key.kind === 'secret' ? jwt.key.secret : jwt.key.pem), jwt.key.kind)
    case 'jwks':
      return undefined
  }
}

/** The newest key first; an invalid signature tries the older ones in turn, each with the same checks. */
async function verifyWithAnyKey (request: FastifyRequest, older: readonly string[]): Promise<SessionClaims> {
  try {
    return await request.jwtVerify<SessionClaims>()
  } catch (error) {
    if (older.length === 0 || !signedWithAnotherKey(error)) throw error
    for (const key of older) {
      try {
        return await request.jwtVerify<SessionClaims>({ key })
      } catch (next) {
        // The signature matched this key, and something else is wrong (it expired, say): that is the answer.
        if (!signedWithAnotherKey(next)) throw next
      }
    }
    throw error
  }
}

function signedWithAnotherKey (error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'FST_JWT_AUTHORIZATION_TOKEN_INVALID'
}

function keyOption (jwt: JwtConfig, keys: SessionKeys | undefined, jwksHealth: JwksHealth | undefined): FastifyJWTOptions['secret'] {
  switch (jwt.key.kind) {
    case 'secret':
    case 'public-key': {
      // Asked on every verification, so a rotation applies to the next request (@fastify/jwt waits for
      // a callback or a promise from a key function).
      const newest = async (): Promise<string> => keys!.newest
      return jwt.key.kind === 'secret' ? newest : { public: newest }
    }
    case 'jwks': {
      const store = new JwksKeyStore({ url: jwt.key.url, cooldownMs: jwt.key.cooldownS * 1000, onFetch: outcome => jwksHealth?.fetched(outcome) })
      return {
        public: async (_request: FastifyRequest, token: TokenOrHeader) => {
          const header = 'header' in token ? token.header : token
          return store.keyFor(header.kid, header.alg)
        }
      }
    }
  }
}

/**
 * The Authorization header wins over the cookie: a caller that sends both chose the header explicitly.
 */
function findSessionToken (request: FastifyRequest, cookieName: string | undefined): { token: string; source: SessionSource } {
  const match = bearerPattern.exec(request.headers.authorization ?? '')
  if (match?.[1] !== undefined && match[1] !== '') return { token: match[1], source: 'header' }
  if (cookieName !== undefined) {
    const cookie = request.cookies[cookieName]
    if (cookie !== undefined && cookie !== '') {
      if (cookieSentTwice(request.headers.cookie, cookieName)) {
        throw new ServiceError('bad_request', 'The session cookie was sent more than once')
      }
      return { token: cookie, source: 'cookie' }
    }
  }
  throw new ServiceError('missing_token', 'No session token was sent')
}

/**
 * Two cookies of one name reach the service when another site on the same parent domain (or a script
 * on a sibling subdomain) plants its own: the cookie parser keeps the first, which may be the planted
 * one. Which session is meant is then unknown, so the request is refused rather than guessed.
 */
function cookieSentTwice (header: string | undefined, name: string): boolean {
  if (header === undefined) return false
  let found = 0
  for (const pair of header.split(';')) {
    const equals = pair.indexOf('=')
    if (equals !== -1 && pair.slice(0, equals).trim() === name && ++found > 1) return true
  }
  return false
}

/** 9999-12-31T23:59:59Z: no clock, Date or log line here holds a later instant. */
const LATEST_TIME_CLAIM_S = 253_402_300_799

/**
 * `1e400` parses as Infinity and passes fast-jwt's comparisons (a session that never ends); a year past
 * 9999 overflows Date. Each time claim that is present must be a finite number from 0 to year 9999.
 */
function checkTimeClaims (claims: SessionClaims): void {
  for (const name of ['exp', 'nbf', 'iat'] as const) {
    const value = claims[name]
    if (value === undefined) continue
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > LATEST_TIME_CLAIM_S) {
      throw new ServiceError('invalid_token', `The session token's ${name} is not a usable time`)
    }
  }
}

/** fast-jwt leaves iat unchecked: a non-numeric or future issue time is doubtful, so refuse it. */
function checkIssuedAt (iat: unknown, toleranceS: number): void {
  if (iat === undefined) return
  if (typeof iat !== 'number' || !Number.isFinite(iat) || iat > Date.now() / 1000 + toleranceS) {
    throw new ServiceError('invalid_token', 'The session token has an unusable issue time')
  }
}

function checkShape (token: string): string {
  const problem = tokenShapeProblem(token)
  if (problem !== undefined) throw new ServiceError('invalid_token', `The session token ${problem}`)
  return token
}

const expiredCodes = new Set(['FST_JWT_AUTHORIZATION_TOKEN_EXPIRED', 'FAST_JWT_EXPIRED', 'FAST_JWT_INACTIVE'])
const missingCodes = new Set(['FST_JWT_NO_AUTHORIZATION_IN_HEADER', 'FST_JWT_NO_AUTHORIZATION_IN_COOKIE', 'FST_JWT_BAD_REQUEST', 'FST_JWT_BAD_COOKIE_REQUEST'])

/** Library errors become contract codes here, where the library is called. */
function translateJwtError (error: unknown): ServiceError {
  if (isServiceError(error)) return error
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code === 'string' && expiredCodes.has(code)) {
    return new ServiceError('token_expired', code === 'FAST_JWT_INACTIVE' ? 'The session token is not valid yet' : 'The session token has expired')
  }
  if (typeof code === 'string' && missingCodes.has(code)) return new ServiceError('missing_token', 'No session token was sent')
  return new ServiceError('invalid_token', 'The session token is invalid')
}

export const sessionAuth = fp(sessionPlugin, { name: 'session-auth', fastify: '5.x' })
