import {
  authenticationError,
  methodNotAllowedError,
  missingScopesError,
  notFoundError,
  payloadTooLargeError,
  rateLimitError,
  tierError,
  unsupportedMediaTypeError
} from './errors.js'
import type { ReceivedBody } from './http-io.js'
import { REQUIRED_SCOPE } from './options.js'
import { matchTokenCreate } from './routes.js'
import type { EmulatorState } from './state.js'
import { checkCreateTokenBody } from './token-request.js'

export const MAX_REQUEST_BYTES = 64 * 1024

export interface ApiRequest {
  method: string
  pathname: string
  authorization: string | undefined
  contentType: string | undefined
  body: ReceivedBody
}

export interface ApiAnswer {
  status: number
  body: unknown
  headers?: Record<string, string>
}

/** HubSpot's behaviour for one API request, checks in HubSpot's order: route, auth, scope, tier, limits, body. */
export function answerApiRequest (state: EmulatorState, request: ApiRequest, now: number): ApiAnswer {
  const { options } = state
  const route = matchTokenCreate(request.pathname)
  if (!route) return { status: 404, body: notFoundError(request.method, request.pathname) }
  if (request.method !== 'POST') {
    return { status: 405, body: methodNotAllowedError(request.method, request.pathname), headers: { Allow: 'POST' } }
  }

  const token = bearerToken(request.authorization)
  if (token === undefined || !options.accessTokens.includes(token)) return { status: 401, body: authenticationError() }
  if (!options.scopes.includes(REQUIRED_SCOPE)) return { status: 403, body: missingScopesError() }
  if (!options.tierAllowed) return { status: 403, body: tierError() }

  const decision = state.limiter.admit(now)
  if (!decision.allowed) {
    const headers: Record<string, string> = {}
    if (options.retryAfterOn429) headers['Retry-After'] = String(Math.max(1, Math.ceil(decision.retryAfterMs / 1000)))
    return { status: 429, body: rateLimitError(decision.policy), headers }
  }
  state.accepted += 1

  if (request.body.tooLarge) return { status: 413, body: payloadTooLargeError(MAX_REQUEST_BYTES) }
  if (!isJsonContentType(request.contentType)) return { status: 415, body: unsupportedMediaTypeError(request.contentType) }
  const check = checkCreateTokenBody(request.body.text, route.dateVersion !== undefined)
  if (!check.ok) return { status: 400, body: check.error }

  const { email, firstName, lastName } = check.request
  const issued = state.issue(
    {
      email,
      ...(firstName !== undefined && { firstName }),
      ...(lastName !== undefined && { lastName }),
      path: request.pathname
    },
    now
  )
  return { status: 200, body: { token: issued } }
}

function bearerToken (header: string | undefined): string | undefined {
  return header === undefined ? undefined : /^Bearer +(\S+) *$/i.exec(header)?.[1]
}

function isJsonContentType (contentType: string | undefined): boolean {
  return contentType?.split(';')[0]?.trim().toLowerCase() === 'application/json'
}
