import { type Attributes, type Span, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api'
import { isServiceError } from '../errors.js'

/**
 * Spans for the service's own stages. The request span, HubSpot and user-directory calls and Redis
 * commands come from their instrumentations (see tracing-sdk.ts); these fill in what happens between.
 * Until tracing is started, withSpan only calls `fn`: no span object, no context switch.
 */

export const STAGE_SPANS = {
  verifySession: 'verify session',
  cacheLookup: 'token cache lookup',
  singleFlightWait: 'single-flight wait',
  budgetWait: 'budget wait',
  breakerDecision: 'breaker decision'
} as const

export type StageSpanName = typeof STAGE_SPANS[keyof typeof STAGE_SPANS]

/** Attribute names of the stage spans; values are booleans and short enumerations only, never identities. */
export const STAGE_ATTRIBUTES = {
  sessionSource: 'chat_token.session.source',
  cacheHit: 'chat_token.cache.hit',
  flightJoined: 'chat_token.flight.joined',
  breakerProbe: 'chat_token.breaker.probe',
  budgetRenewal: 'chat_token.budget.renewal'
} as const

export const NO_ATTRIBUTES: Attributes = Object.freeze({})

let tracer: Tracer | undefined

/** Called once a tracer provider is registered (tracing-sdk.ts). */
export function enableStageSpans (): void {
  tracer = trace.getTracer('chat-token')
}

/**
 * Runs `fn` inside a span named `name` (the active span while it runs, so calls it makes nest under
 * it) and ends the span when `fn` returns or its promise settles. A failure marks the span as an
 * error with the service's error code (or the error's class name): never its message, which may quote
 * input. `describe` adds attributes from the result.
 */
export function withSpan<T> (name: StageSpanName, attributes: Attributes, fn: () => T, describe?: (value: Awaited<T>) => Attributes): T {
  if (tracer === undefined) return fn()
  return tracer.startActiveSpan(name, { attributes }, span => {
    let result: T
    try {
      result = fn()
    } catch (error) {
      failed(span, error)
      throw error
    }
    if (!(result instanceof Promise)) {
      succeeded(span, result as Awaited<T>, describe)
      return result
    }
    const settled: Promise<Awaited<T>> = result.then(value => {
      succeeded(span, value as Awaited<T>, describe)
      return value as Awaited<T>
    }, (error: unknown) => {
      failed(span, error)
      throw error
    })
    return settled as T
  })
}

function succeeded<V> (span: Span, value: V, describe: ((value: V) => Attributes) | undefined): void {
  if (describe !== undefined) span.setAttributes(describe(value))
  span.end()
}

function failed (span: Span, error: unknown): void {
  const type = isServiceError(error) ? error.code : error instanceof Error ? error.name : 'unknown'
  span.setAttribute('error.type', type)
  span.setStatus({ code: SpanStatusCode.ERROR, message: type })
  span.end()
}
