import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Visitor } from '../auth/session-context.js'
import type { VerifiedSession } from '../auth/session.js'
import type { Clock } from '../deadline.js'
import { ServiceError } from '../errors.js'
import { createAnswerByDeadline } from '../http/answer-by-deadline.js'
import { createCallerLimit } from '../http/caller-limit.js'
import type { CallerCount } from '../http/local-caller-counters.js'
import { assertCookieOriginAllowed } from '../http/origin-check.js'
import { NO_ATTRIBUTES, STAGE_ATTRIBUTES, STAGE_SPANS, withSpan } from '../telemetry/spans.js'
import type { CacheLookup } from '../tokens/token-cache.js'
import { IDENTIFICATION_TOKEN_LIFETIME_MS } from '../tokens/token-issuer.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Keyed hash of the caller's email, for the request's log line. */
    emailHash: string | null
    /** Set by the routes' first preHandler, so the per-caller limit that follows can key on the subject. */
    verifiedSession: VerifiedSession | null
    /** What the per-caller limit's round trip to Redis also read of the token cache, for the handler. */
    cacheLookup: CacheLookup | null
  }
}

export interface ChatTokenRouteOptions {
  corsOrigins: string[]
  /** HUBSPOT_TIMEOUT_MS: every answer of these routes leaves within this much of the request being read. */
  timeoutMs: number
  clock: Clock
  /** RATE_LIMIT_MAX per RATE_LIMIT_WINDOW_S per caller; counters in Redis when it is configured. */
  callerLimit: { max: number; windowS: number }
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
 * GET and DELETE /chat-token, the last stage: every request is verified (session stage), counted per
 * caller, mapped to a visitor, and served by the token issuer (token stage), within its deadline.
 */
export async function chatTokenRoutes (app: FastifyInstance, options: ChatTokenRouteOptions): Promise<void> {
  const allowedOrigins = new Set(options.corsOrigins)
  app.decorateRequest('emailHash', null)
  app.decorateRequest('verifiedSession', null)
  app.decorateRequest('cacheLookup', null)
  app.decorateRequest('receivedAt', 0)
  const answerByDeadline = createAnswerByDeadline(app, { budgetMs: options.timeoutMs, clock: options.clock })
  app.addHook('onClose', async () => { answerByDeadline.close() })

  // Verification comes first, so callers are counted by their verified subject or email and forged
  // tokens cannot spend anyone's quota.
  async function verify (request: FastifyRequest): Promise<void> {
    const session = await withSpan(STAGE_SPANS.verifySession, NO_ATTRIBUTES, () => app.verifySession(request), found => ({ [STAGE_ATTRIBUTES.sessionSource]: found.source }))
    if (session.source === 'cookie') assertCookieOriginAllowed(request, allowedOrigins)
    request.verifiedSession = session
  }

  const callerLimit = createCallerLimit({ ...options.callerLimit, redis: app.redis, clock: options.clock })
  /**
   * The per-caller limit. With Redis, a session whose visitor its claims already name (the usual
   * case) is counted in the same round trip that reads its cached token: a warm hit costs one trip.
   * The token read for a caller past the limit is dropped unseen.
   */
  async function limitCaller (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const context = request.verifiedSession?.context
    if (context === undefined) throw new ServiceError('internal_error', 'The caller limit ran without a verified session')
    let count: CallerCount
    if (app.redis !== undefined && request.method === 'GET' && context.subject.kind === 'visitor') {
      const looked = await app.tokenIssuer.lookup(context.subject.visitor, callerLimit.counterFor(context.callerKey))
      request.cacheLookup = looked
      count = looked.count ?? callerLimit.countLocally(context.callerKey)
    } else {
      count = await callerLimit.count(context.callerKey)
    }
    callerLimit.enforce(reply, count)
  }

  const routeConfig = {
    onRequest: answerByDeadline.onRequest,
    onResponse: answerByDeadline.onResponse,
    onRequestAbort: answerByDeadline.onRequestAbort,
    preHandler: [verify, limitCaller]
  }

  async function visitorFor (request: FastifyRequest): Promise<Visitor> {
    const session = request.verifiedSession
    // The verify preHandler ran first or the request was already answered with its error.
    if (session === null) throw new ServiceError('internal_error', 'The route ran without a verified session')
    const visitor = await app.visitorOf(session.context, request.receivedAt + options.timeoutMs - options.clock.now())
    request.emailHash = visitor.emailHash
    return visitor
  }

  app.get('/chat-token', { ...routeConfig, schema: { response: chatTokenResponse } }, async (request, reply) => {
    const visitor = await visitorFor(request)
    const minted = await app.tokenIssuer.tokenFor(visitor, request.log, request.receivedAt, request.cacheLookup ?? undefined)
    // Answered at the deadline already (see answer-by-deadline.ts): the token stays cached for next time.
    if (reply.sent) return reply
    reply.header('cache-control', 'no-store')
    return {
      email: visitor.identity.email,
      token: minted.token,
      expiresAt: new Date(minted.issuedAt + IDENTIFICATION_TOKEN_LIFETIME_MS).toISOString()
    }
  })

  app.delete('/chat-token', routeConfig, async (request, reply) => {
    const visitor = await visitorFor(request)
    await app.tokenIssuer.forget(visitor)
    if (reply.sent) return reply
    return reply.code(204).header('cache-control', 'no-store').send()
  })
}
