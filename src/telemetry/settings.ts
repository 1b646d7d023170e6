import type { Env } from '../config/types.js'

/**
 * Whether traces are exported, from the standard OpenTelemetry variables only. Tracing is off unless an
 * OTLP endpoint is set; OTEL_SDK_DISABLED=true, or OTEL_TRACES_EXPORTER=none, turn it off again.
 * Everything else (sampler, service name, batch sizes, headers, timeout) is read by the SDK itself.
 */
export type TracingSettings =
  | { enabled: true; tracesUrl: string }
  | { enabled: false; reason: 'no-endpoint' | 'sdk-disabled' | 'exporter-none' }

export function tracingSettings (env: Env): TracingSettings {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return { enabled: false, reason: 'sdk-disabled' }
  if (env.OTEL_TRACES_EXPORTER?.trim().toLowerCase() === 'none') return { enabled: false, reason: 'exporter-none' }
  const tracesEndpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim()
  if (tracesEndpoint !== undefined && tracesEndpoint !== '') return { enabled: true, tracesUrl: tracesEndpoint }
  const endpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim()
  if (endpoint !== undefined && endpoint !== '') return { enabled: true, tracesUrl: `${endpoint.replace(/\/+$/, '')}/v1/traces` }
  return { enabled: false, reason: 'no-endpoint' }
}

/** The traces URL as a log line may show it: no user, password or query (which may carry a key). */
export function printableUrl (url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.origin}${parsed.pathname}`
  } catch {
    return '(not a URL)'
  }
}

/** The OTEL_* entries of `env`: the SDK reads its settings from process.env, so ./.env ones are copied there. */
export function otelVariables (env: Env): Record<string, string> {
  const found: Record<string, string> = {}
  for (const [name, value] of Object.entries(env)) {
    if (name.startsWith('OTEL_') && value !== undefined) found[name] = value
  }
  return found
}
