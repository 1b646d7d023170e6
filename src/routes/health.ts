import type { FastifyInstance } from 'fastify'
import type { CheckStatus, ReadinessChecks } from '../readiness.js'

/** What readiness depends on. Shutdown flips `draining`. */
export interface Lifecycle {
  draining: boolean
}

/** Statuses that leave the replica `ready` rather than `degraded`. */
const HEALTHY: ReadonlySet<string> = new Set(['ok', 'unknown'])

export interface HealthRouteOptions {
  lifecycle: Lifecycle
  checks: ReadinessChecks
}

const healthzResponse = {
  200: {
    type: 'object',
    required: ['status'],
    properties: { status: { type: 'string', const: 'ok' } }
  }
} as const

const readyzBody = {
  type: 'object',
  required: ['status', 'checks'],
  properties: {
    status: { type: 'string', enum: ['ready', 'degraded', 'draining'] },
    checks: { type: 'object', additionalProperties: { type: 'string' } },
    reasons: { type: 'object', additionalProperties: { type: 'string' } }
  }
} as const

export async function healthRoutes (app: FastifyInstance, { lifecycle, checks }: HealthRouteOptions): Promise<void> {
  app.get('/healthz', { schema: { response: healthzResponse } }, async (_request, reply) => {
    reply.header('cache-control', 'no-store')
    return { status: 'ok' }
  })

  app.get('/readyz', { schema: { response: { 200: readyzBody, 503: readyzBody } } }, async (_request, reply) => {
    const results: Record<string, CheckStatus> = { shutdown: lifecycle.draining ? 'failing' : 'ok' }
    const reasons: Record<string, string> = {}
    for (const [name, check] of checks.entries()) {
      const result = check()
      if (typeof result === 'string') {
        results[name] = result
      } else {
        results[name] = result.status
        reasons[name] = result.reason
      }
    }
    // Only draining makes a replica unready: a degraded dependency is served around (cached tokens,
    // keys already fetched, per-process state), and taking every replica out of the load balancer at
    // once would turn a dependency's outage into a full one.
    const ready = !lifecycle.draining
    const status = ready ? (Object.values(results).every(result => HEALTHY.has(result)) ? 'ready' : 'degraded') : 'draining'
    reply.code(ready ? 200 : 503).header('cache-control', 'no-store')
    return Object.keys(reasons).length === 0 ? { status, checks: results } : { status, checks: results, reasons }
  })
}
