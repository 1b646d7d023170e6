/**
 * Every error the service answers with, in one registry. Routes and plugins throw a ServiceError with
 * one of these codes; the error handler renders it as RFC 9457 problem+json. Codes are part of the
 * public contract: never rename one.
 */
export const errorCatalog = {
  // Session authentication
  missing_token: { status: 401, title: 'No session token' },
  invalid_token: { status: 401, title: 'Invalid session token' },
  token_expired: { status: 401, title: 'Session token expired' },
  email_not_verified: { status: 403, title: 'Email not verified' },
  origin_not_allowed: { status: 403, title: 'Origin not allowed' },
  email_missing: { status: 422, title: 'No usable email' },
  // Callers
  rate_limited: { status: 429, title: 'Too many requests' },
  // Upstreams
  upstream_rejected: { status: 502, title: 'HubSpot rejected the request' },
  user_lookup_failed: { status: 502, title: 'User lookup failed' },
  upstream_unavailable: { status: 503, title: 'HubSpot unavailable' },
  upstream_timeout: { status: 504, title: 'HubSpot timed out' },
  // Generic HTTP
  bad_request: { status: 400, title: 'Bad request' },
  not_found: { status: 404, title: 'Not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  request_timeout: { status: 408, title: 'Request timeout' },
  payload_too_large: { status: 413, title: 'Payload too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  headers_too_large: { status: 431, title: 'Request header fields too large' },
  overloaded: { status: 503, title: 'Service overloaded' },
  internal_error: { status: 500, title: 'Internal error' }
} as const satisfies Record<string, { status: number; title: string }>

export type ErrorCode = keyof typeof errorCatalog

export class ServiceError extends Error {
  readonly code: ErrorCode
  readonly status: number
  /** Seconds, sent as Retry-After where the code invites a retry. */
  readonly retryAfterS: number | undefined

  constructor (code: ErrorCode, detail: string, options: { retryAfterS?: number; cause?: unknown } = {}) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'ServiceError'
    this.code = code
    this.status = errorCatalog[code].status
    this.retryAfterS = options.retryAfterS === undefined ? undefined : Math.max(1, Math.ceil(options.retryAfterS))
  }
}

export function isServiceError (value: unknown): value is ServiceError {
  return value instanceof ServiceError
}
