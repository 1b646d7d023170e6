import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { IdentityConfig } from '../config.js'
import { type Identity, identityFromClaims } from '../auth/identity.js'
import type { UserDirectory } from '../auth/user-lookup.js'
import { assertCookieOriginAllowed } from '../http/origin-check.js'
import { IDENTIFICATION_TOKEN_LIFETIME_MS, type TokenIssuer } from '../tokens/token-issuer.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Keyed hash of the caller's email, for the request's log line. */
    emailHash: string | null
  }
}

export interface ChatTokenRouteOptions {
  issuer: TokenIssuer
  directory: UserDirectory | undefined
  identity: IdentityConfig
  corsOrigins: string[]
  hashEmail: (email: string) => string
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

export async function chatTokenRoutes (app: FastifyInstance, options: ChatTokenRouteOptions): Promise<void> {
  const allowedOrigins = new Set(options.corsOrigins)
  app.decorateRequest('emailHash', null)

  async function identify (request: FastifyRequest): Promise<Identity> {
    const session = await app.verifySession(request)
    if (session.source === 'cookie') assertCookieOriginAllowed(request, allowedOrigins)
    const resolution = identityFromClaims(session.claims, options.identity, options.directory !== undefined)
    const identity = resolution.kind === 'identity'
      ? resolution.identity
      : { ...resolution.names, ...await options.directory!.lookup(resolution.subject) }
    request.emailHash = options.hashEmail(identity.email)
    return identity
  }

  app.get('/chat-token', { schema: { response: chatTokenResponse } }, async (request, reply) => {
    const identity = await identify(request)
    const minted = await options.issuer.tokenFor(identity, request.log)
    reply.header('cache-control', 'no-store')
    return {
      email: identity.email,
      token: minted.token,
      expiresAt: new Date(minted.issuedAt + IDENTIFICATION_TOKEN_LIFETIME_MS).toISOString()
    }
  })

  app.delete('/chat-token', async (request, reply) => {
    const identity = await identify(request)
    await options.issuer.forget(identity)
    return reply.code(204).header('cache-control', 'no-store').send()
  })
}
