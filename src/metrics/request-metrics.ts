import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { ServiceMetrics } from './service-metrics.js'

export interface RequestMetricsOptions {
  observe: ServiceMetrics['observeRequest']
}

/** Times every answer on the public port. A callback hook: no promise per request on the hot path. */
async function requestMetricsPlugin (app: FastifyInstance, { observe }: RequestMetricsOptions): Promise<void> {
  app.addHook('onResponse', (request, reply, done) => {
    // The route pattern keeps the label set bounded; unmatched URLs (scanners) share one value.
    observe(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000)
    done()
  })
}

export const requestMetrics = fp(requestMetricsPlugin, { name: 'request-metrics', fastify: '5.x' })
