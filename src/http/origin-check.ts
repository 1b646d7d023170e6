import type { FastifyRequest } from 'fastify'
import { ServiceError } from '../errors.js'

/**
 * Cookies ride along on cross-site requests, so a cookie-authenticated call must come from the service's
 * own origin or a listed one (CSRF defence). Header-authenticated calls need no check: a foreign page
 * cannot read the bearer token to send it.
 */
export function assertCookieOriginAllowed (request: FastifyRequest, allowedOrigins: ReadonlySet<string>): void {
  const origin = request.headers.origin
  if (origin !== undefined) {
    if (origin === `${request.protocol}://${request.host}` || allowedOrigins.has(origin)) return
    throw new ServiceError('origin_not_allowed', 'Requests from this origin may not use the session cookie')
  }
  if (request.headers['sec-fetch-site'] === 'cross-site') {
    throw new ServiceError('origin_not_allowed', 'Cross-site requests may not use the session cookie')
  }
}
