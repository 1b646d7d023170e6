import { createRequire } from 'node:module'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { registerInstrumentations } from '@opentelemetry/instrumentation'
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis'
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici'
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources'
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { createOutboundUrlRecorder } from './outbound-url.js'
import { enableStageSpans } from './spans.js'
import type { Tracing, TracingOptions } from './start.js'

/**
 * The OpenTelemetry SDK, loaded only when tracing is on (start.ts imports this module dynamically).
 * The SDK reads the standard OTEL_* variables itself: endpoint, headers, timeout and compression of
 * the OTLP/HTTP (JSON) exporter, OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_* for batching,
 * OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
 */

/** Routes polled by load balancers every few seconds: a span each would drown the traces that matter. */
const UNTRACED_PATHS = new Set(['/healthz', '/readyz'])

export function startTracingSdk (options: TracingOptions & { serviceVersion: string }): Tracing {
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': 'chat-token', 'service.version': options.serviceVersion }))
    .merge(detectResources({ detectors: [envDetector] }))
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] })
  // traceparent and tracestate only: W3C baggage, which a browser could fill with anything, is neither
  // read from requests nor forwarded to HubSpot or the user directory.
  provider.register({ propagator: new W3CTraceContextPropagator() })

  const recordedUrl = createOutboundUrlRecorder(options.directoryTemplate)
  registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      // Registers itself on every Fastify instance as it is created (a diagnostics channel), so it needs
      // no module patching and no change to app.ts. One request span; the stage spans (spans.ts) are its
      // children, and lifecycle-hook and handler spans are left out as noise.
      new FastifyOtelInstrumentation({
        registerOnInitialization: true,
        instrumentHooks: false,
        instrumentHandler: false,
        recordExceptions: false,
        ignorePaths: ({ url }) => UNTRACED_PATHS.has(url.split('?', 1)[0] ?? url),
        requestHook: (span, request) => {
          // The query is not the service's input and could carry anything a caller put there.
          span.setAttribute('url.path', request.url.split('?', 1)[0] ?? '')
          const route = request.routeOptions.url
          span.updateName(route === undefined ? request.method : `${request.method} ${route}`)
        }
      }),
      // Subscribes to undici's diagnostics channels: every HubSpot attempt and directory lookup is a
      // client span, and traceparent is injected into it. No headers are recorded (the option that would
      // is left unset): the Authorization headers carry the access token and USER_LOOKUP_AUTH.
      new UndiciInstrumentation({
        startSpanHook: request => ({ ...recordedUrl(request.origin, request.path) })
      }),
      // Command names only: keys hold hashes of identities, values hold encrypted tokens.
      new IORedisInstrumentation({ dbStatementSerializer: command => command })
    ]
  })
  // ioredis is CommonJS, and connection.ts imports it lazily with import(), which require-in-the-middle
  // does not see (only an ESM loader hook would). Requiring it here, after the instrumentation is
  // registered, patches its one Redis class; the later import() gets the same cached module.
  if (options.redis) createRequire(import.meta.url)('ioredis')
  enableStageSpans()
  return { enabled: true, shutdown: () => provider.shutdown() }
}
