import type { IncomingMessage, ServerResponse } from 'node:http'
import { getHeapStatistics } from 'node:v8'
import cors from '@fastify/cors'
import helmet, { type HelmetOptions } from 'helmet'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../config/types.js'
import { ServiceError } from '../errors.js'

export interface EdgeOptions {
  corsOrigins: string[]
  loadShedding: Config['loadShedding']
}

/** Seconds a shed caller is told to wait; long enough for a sampling interval or two to pass. */
const OVERLOAD_RETRY_AFTER_S = 5

/**
 * Health routes are never shed: a liveness probe failing under load would restart a busy replica, and
 * readiness failing on every busy replica at once would empty the load balancer.
 */
const unshedRoutes = new Set(['/healthz', '/readyz'])

/**
 * helmet's headers never vary per request here, so they are computed once by letting helmet write them
 * to a recorder. (@fastify/helmet rebuilds helmet and re-parses the CSP on every request: a profile of
 * the cache-hit path showed it among the largest costs.)
 */
function staticSecurityHeaders (options: HelmetOptions): Record<string, string> {
  const headers: Record<string, string> = {}
  const recorder = {
    setHeader: (name: string, value: string | number | readonly string[]) => { headers[name.toLowerCase()] = String(value) },
    removeHeader: (name: string) => { delete headers[name.toLowerCase()] }
  }
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, () => {})
  return headers
}

/** Browser-facing hygiene in front of every route: security headers, CORS, load shedding. */
async function edgePlugin (app: FastifyInstance, options: EdgeOptions): Promise<void> {
  const securityHeaders = staticSecurityHeaders({
    // JSON answers render nothing, so the policy can forbid everything; it also stays right for the
    // browser helper script, which is executed by the embedding page under that page's own policy.
    contentSecurityPolicy: {
      useDefaults: false,
      directives: { defaultSrc: ['\'none\''], baseUri: ['\'none\''], formAction: ['\'none\''], frameAncestors: ['\'none\''] }
    },
    frameguard: { action: 'deny' },
    // Headers that only mean something for HTML documents: fewer bytes on every answer.
    crossOriginOpenerPolicy: false,
    originAgentCluster: false,
    xDnsPrefetchControl: false,
    xDownloadOptions: false,
    xPermittedCrossDomainPolicies: false
  })
  app.addHook('onRequest', (_request, reply, done) => {
    reply.headers(securityHeaders)
    done()
  })

  if (options.corsOrigins.length > 0) {
    const allowed = new Set(options.corsOrigins)
    await app.register(cors, {
      // Exact matches only, answered with the caller's own origin (never "*", which credentials forbid).
      // A refused origin gets no CORS headers at all and its preflight falls through to a 404 problem.
      origin: (origin, callback) => { callback(null, origin !== undefined && allowed.has(origin)) },
      credentials: true,
      methods: ['GET', 'DELETE'],
      allowedHeaders: ['authorization', 'x-request-id'],
      exposedHeaders: ['date', 'retry-after', 'x-request-id'],
      // Chromium caps the preflight cache at two hours; the /chat-token call runs on every page load.
      maxAge: 7200,
      // Strict mode answers a malformed preflight with text/plain, outside the problem+json contract.
      strictPreflight: false
    })
  }

  const { maxEventLoopDelayMs, maxHeapUsedBytes } = options.loadShedding
  await app.register(underPressure, {
    maxEventLoopDelay: maxEventLoopDelayMs,
    // Past ~90% of V8's limit the collector thrashes; shedding gives it room before an OOM kill.
    maxHeapUsedBytes: maxHeapUsedBytes ?? Math.floor(getHeapStatistics().heap_size_limit * 0.9),
    pressureHandler: async request => {
      if (unshedRoutes.has(request.routeOptions.url ?? '')) return
      throw new ServiceError('overloaded', 'The service is overloaded; retry shortly', { retryAfterS: OVERLOAD_RETRY_AFTER_S })
    }
  })
}

export const edgeProtection = fp(edgePlugin, { name: 'edge-protection', fastify: '5.x' })
