import type { FastifyInstance } from 'fastify'

/** What readiness depends on. Shutdown flips `draining`; later checks (Redis) report here too. */
export interface Lifecycle {
  draining: boolean
}

/**
 * `ok`, `unknown` (nothing seen yet, so nothing known to be wrong), or a word for what is wrong
 * (`degraded`, `credentials_refused`, `unavailable`, `failed`...). Only `shutdown` ever decides readiness.
 */
export type CheckStatus = string
/** A status, or a status and why (shown under `reasons` beside `checks`). */
export type ReadinessCheck = () => CheckStatus | { status: CheckStatus; reason: string }

/** Statuses that leave the replica `ready` rather than `degraded`. */
const HEALTHY: ReadonlySet<string> = new Set(['ok', 'unknown'])

export interface HealthRouteOptions {
  lifecycle: Lifecycle
  checks: Record<string, ReadinessCheck>
}

export async function healthRoutes (app: FastifyInstance, { lifecycle, checks }: HealthRouteOptions): Promise<void> {
  app.get('/healthz', async (_request, reply) => {
    reply.header('cache-control', 'no-store')
    return { status: 'ok' }
  })

  app.get('/readyz', async (_request, reply) => {
    const results: Record<string, CheckStatus> = { shutdown: lifecycle.draining ? 'failing' : 'ok' }
    const reasons: Record<string, string> = {}
    for (const [name, check] of Object.entries(checks)) {
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
