import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { IdentityConfig } from '../config.js'
import { normaliseEmail } from '../auth/email.js'
import { claimValue, type Identity, identityFromClaims, type SessionClaims } from '../auth/identity.js'
import type { VerifiedSession } from '../auth/session.js'
import type { UserDirectory } from '../auth/user-lookup.js'
import { createAnswerByDeadline } from '../http/answer-by-deadline.js'
import { registerCallerRateLimit } from '../http/caller-rate-limit.js'
import { assertCookieOriginAllowed } from '../http/origin-check.js'
import type { RedisLink } from '../redis/connection.js'
import type { Clock } from '../deadline.js'
import { NO_ATTRIBUTES, STAGE_ATTRIBUTES, STAGE_SPANS, withSpan } from '../telemetry/spans.js'
import { IDENTIFICATION_TOKEN_LIFETIME_MS, type TokenIssuer } from '../tokens/token-issuer.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Keyed hash of the caller's email, for the request's log line. */
    emailHash: string | null
    /** Set by the routes' first preHandler, so the per-caller limit that follows can key on the subject. */
    verifiedSession: VerifiedSession | null
  }
}

export interface ChatTokenRouteOptions {
  issuer: TokenIssuer
  directory: UserDirectory | undefined
  identity: IdentityConfig
  corsOrigins: string[]
  hashEmail: (email: string) => string
  /** HUBSPOT_TIMEOUT_MS: every answer of these routes leaves within this much of the request being read. */
  timeoutMs: number
  clock: Clock
  /** RATE_LIMIT_MAX per RATE_LIMIT_WINDOW_S per caller; counters in Redis when it is configured. */
  callerLimit: { max: number; windowS: number; redis: RedisLink | undefined; clock?: Clock }
}

const chatTokenResponse = {
  200: {
    type: 'object',
    required: ['email', 'token', 'expiresAt'],
    properties: {
      email: { type: 'string' },
      token: { type: 'string' },
      expiresAt: { type: 'string' }
    }
  }
} as const

/**
 * What a request derives from its session's claims alone. Verified claims are one shared object per
 * session token (see VerifiedSessionCache), so this is worked out once per token rather than per
 * request: the hashes and the claim checks were a fifth of a cache hit's cost.
 */
interface ClaimsFacts {
  /** The per-caller limit's key (see callerKeyFor). */
  callerKey?: string
  /** Set only for identities taken from the claims: a directory answer is looked up every time. */
  identity?: Identity
  emailHash?: string
}

export async function chatTokenRoutes (app: FastifyInstance, options: ChatTokenRouteOptions): Promise<void> {
  const allowedOrigins = new Set(options.corsOrigins)
  app.decorateRequest('emailHash', null)
  app.decorateRequest('verifiedSession', null)
  app.decorateRequest('receivedAt', 0)
  const answerByDeadline = createAnswerByDeadline({ budgetMs: options.timeoutMs, clock: options.clock })
  app.addHook('onClose', async () => { answerByDeadline.close() })
  // Per app, not per module: the facts depend on this app's identity settings and hash key.
  const factsByClaims = new WeakMap<SessionClaims, ClaimsFacts>()
  function factsFor (claims: SessionClaims): ClaimsFacts {
    let facts = factsByClaims.get(claims)
    if (facts === undefined) {
      facts = {}
      factsByClaims.set(claims, facts)
    }
    return facts
  }
  /**
   * The per-caller limit's key for a verified session: its subject; else its email, normalised exactly
   * as the identity mapping will (so no spelling of one address is another caller); else one key for
   * every session that has neither (those can only be refused, 422, at no cost). Never the client IP
   * once the session is verified: many people share one address behind a NAT or a proxy.
   */
  function callerKeyFor (claims: SessionClaims): string {
    const facts = factsFor(claims)
    if (facts.callerKey === undefined) {
      const subject = claims.sub
      const email = normaliseEmail(claimValue(claims, options.identity.emailClaim))
      facts.callerKey = typeof subject === 'string' && subject !== ''
        ? `s:${options.hashEmail(`sub\u0000${subject}`)}`
        : email === undefined ? 'n:' : `e:${options.hashEmail(`email\u0000${email}`)}`
    }
    return facts.callerKey
  }

  // Verification runs before the per-caller limit (a preHandler added after this one by the rate-limit
  // plugin), so callers are counted by their verified subject or email and forged tokens cannot spend
  // anyone's quota.
  async function verify (request: FastifyRequest): Promise<void> {
    const session = await withSpan(STAGE_SPANS.verifySession, NO_ATTRIBUTES, () => app.verifySession(request), found => ({ [STAGE_ATTRIBUTES.sessionSource]: found.source }))
    if (session.source === 'cookie') assertCookieOriginAllowed(request, allowedOrigins)
    request.verifiedSession = session
  }
  await registerCallerRateLimit(app, {
    ...options.callerLimit,
    callerKey: request => {
      const claims = request.verifiedSession?.claims
      // The address only for a request whose session could not be verified.
      return claims === undefined ? `i:${options.hashEmail(`ip\u0000${request.ip}`)}` : callerKeyFor(claims)
    }
  })
  const routeConfig = {
    onRequest: answerByDeadline.onRequest,
    onResponse: answerByDeadline.onResponse,
    onRequestAbort: answerByDeadline.onRequestAbort,
    preHandler: verify,
    config: { rateLimit: {} }
  }

  async function identify (request: FastifyRequest): Promise<Identity> {
    const claims = request.verifiedSession!.claims
    const facts = factsFor(claims)
    if (facts.identity !== undefined && facts.emailHash !== undefined) {
      request.emailHash = facts.emailHash
      return facts.identity
    }
    // Refusals (no email, unverified email) are not remembered: they are rare and cheap to repeat.
    const resolution = identityFromClaims(claims, options.identity, options.directory !== undefined)
    if (resolution.kind === 'identity') {
      // Frozen: every later request with the same session token shares the object (and the token cache keys on it).
      facts.identity = Object.freeze(resolution.identity)
      facts.emailHash = options.hashEmail(resolution.identity.email)
      request.emailHash = facts.emailHash
      return facts.identity
    }
    const remainingMs = request.receivedAt + options.timeoutMs - options.clock.now()
    const identity = { ...resolution.names, ...await options.directory!.lookup(resolution.subject, remainingMs) }
    request.emailHash = options.hashEmail(identity.email)
    return identity
  }

  app.get('/chat-token', { ...routeConfig, schema: { response: chatTokenResponse } }, async (request, reply) => {
    const identity = await identify(request)
    const minted = await options.issuer.tokenFor(identity, request.log, request.receivedAt)
    // Answered at the deadline already (see answer-by-deadline.ts): the token stays cached for next time.
    if (reply.sent) return reply
    reply.header('cache-control', 'no-store')
    return {
      email: identity.email,
      token: minted.token,
      expiresAt: new Date(minted.issuedAt + IDENTIFICATION_TOKEN_LIFETIME_MS).toISOString()
    }
  })

  app.delete('/chat-token', routeConfig, async (request, reply) => {
    const identity = await identify(request)
    await options.issuer.forget(identity)
    if (reply.sent) return reply
    return reply.code(204).header('cache-control', 'no-store').send()
  })
}
