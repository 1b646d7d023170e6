import type { Env } from '../config/types.js'
import { serviceVersion } from '../startup.js'
import { otelVariables, printableUrl, tracingSettings } from './settings.js'

/**
 * Starts OpenTelemetry tracing when an OTLP endpoint is configured, and otherwise loads nothing of the
 * SDK: tracing-sdk.ts (and every package it imports) is imported only in that case, and the stage spans
 * stay plain function calls.
 *
 * When: server.ts calls this before buildApp, which is early enough for all three instrumentations in
 * ESM without a loader hook or `node --import`. @fastify/otel attaches to each Fastify instance when it
 * is created (the `fastify.initialization` diagnostics channel), the undici instrumentation listens on
 * undici's diagnostics channels per request, and ioredis, loaded lazily, is patched through require (see
 * tracing-sdk.ts). So `npm start`, the image's CMD and the bench run unchanged, and OTEL_* variables in
 * ./.env work like every other setting.
 */

export interface TracingOptions {
  /** USER_LOOKUP_URL: its calls are recorded as the template, never with the subject filled in. */
  directoryTemplate: string | undefined
  /** REDIS_URL is set: Redis commands are traced. */
  redis: boolean
}

export interface Tracing {
  enabled: boolean
  /** Exports what is left and stops: call after the app has closed. */
  shutdown: () => Promise<void>
}

export async function startTracing (env: Env, options: TracingOptions): Promise<Tracing & { tracesUrl?: string }> {
  const settings = tracingSettings(env)
  if (!settings.enabled) return { enabled: false, shutdown: async () => {} }
  // The SDK reads its settings from process.env only; a variable set in ./.env alone is copied there.
  for (const [name, value] of Object.entries(otelVariables(env))) process.env[name] ??= value
  const { startTracingSdk } = await import('./tracing-sdk.js')
  return { ...startTracingSdk({ ...options, serviceVersion: serviceVersion() }), tracesUrl: printableUrl(settings.tracesUrl) }
}
