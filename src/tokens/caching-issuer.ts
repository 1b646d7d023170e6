import type { FastifyBaseLogger } from 'fastify'
import type { Visitor } from '../auth/session-context.js'
import { type Clock, Deadline } from '../deadline.js'
import { ServiceError } from '../errors.js'
import type { HubSpotClient, MintedToken } from '../hubspot/client.js'
import type { CallerCounter } from '../http/caller-limit.js'
import type { CacheLookup, TokenStore } from './token-cache.js'
import type { ServiceEvents } from '../events.js'
import type { TokenIssuer } from './token-issuer.js'
import { NO_ATTRIBUTES, STAGE_ATTRIBUTES, STAGE_SPANS, withSpan } from '../telemetry/spans.js'

export interface CachingIssuerOptions {
  hubspot: HubSpotClient
  store: TokenStore
  /** HUBSPOT_TIMEOUT_MS: one deadline per request for waiting on a lock or a budget slot and the call. */
  timeoutMs: number
  clock: Clock
  events: ServiceEvents
}

/**
 * cache → single-flight → (breaker → budget, in the HubSpot client's gate) → HubSpot.
 * Concurrent requests for one identity share one flight per process; the store makes it one across
 * replicas when it is shared. A logout drops the email's flights, so a request that comes after it
 * starts its own instead of joining one that began before (the store keeps that one's token out of the
 * cache).
 */
export function createCachingIssuer (options: CachingIssuerOptions): TokenIssuer {
  const { hubspot, store, timeoutMs, clock, events } = options
  /** email → identity fingerprint → flight */
  const flights = new Map<string, Map<string, Promise<MintedToken>>>()

  function lookup (visitor: Visitor, counter: CallerCounter): Promise<CacheLookup> {
    return withSpan(STAGE_SPANS.cacheLookup, NO_ATTRIBUTES, () => store.lookupCounting(visitor.key, counter), found => ({ [STAGE_ATTRIBUTES.cacheHit]: found.token !== undefined }))
  }

  async function tokenFor (visitor: Visitor, log: FastifyBaseLogger, receivedAt = clock.now(), looked?: CacheLookup): Promise<MintedToken> {
    const startedAt = receivedAt
    const key = visitor.key
    const cached = looked !== undefined
      ? looked.token
      : await withSpan(STAGE_SPANS.cacheLookup, NO_ATTRIBUTES, () => store.lookup(key), found => ({ [STAGE_ATTRIBUTES.cacheHit]: found !== undefined }))
    if (cached !== undefined) {
      events.cacheHit()
      return cached
    }
    events.cacheMiss()
    // Created on a miss only (cache hits need no timer), but counting from when the request was read.
    const deadline = new Deadline(Math.max(1, timeoutMs - (clock.now() - startedAt)), clock)
    const sameEmail = flights.get(key.email) ?? new Map<string, Promise<MintedToken>>()
    let flight = sameEmail.get(key.fingerprint)
    const joined = flight !== undefined
    if (flight === undefined) {
      const started = store.mintOnce(key, deadline, () => hubspot.createVisitorToken(visitor.identity, deadline, log))
      flight = started
      sameEmail.set(key.fingerprint, started)
      flights.set(key.email, sameEmail)
      const done = (): void => {
        // A logout may have dropped this flight, and a later request started another in its place.
        const current = flights.get(key.email)
        if (current?.get(key.fingerprint) !== started) return
        current.delete(key.fingerprint)
        if (current.size === 0) flights.delete(key.email)
      }
      started.then(done, done)
    }
    return withSpan(STAGE_SPANS.singleFlightWait, { [STAGE_ATTRIBUTES.flightJoined]: joined }, () => withinDeadline(flight, deadline))
  }

  return {
    lookup,
    tokenFor,
    forget: visitor => {
      flights.delete(visitor.key.email)
      return store.forget(visitor.key.email)
    }
  }
}

/**
 * A request that joined someone else's flight still answers by its own deadline. Once it has answered,
 * its deadline's timer is cleared.
 */
function withinDeadline<T> (work: Promise<T>, deadline: Deadline): Promise<T> {
  const timeout = (): ServiceError => new ServiceError('upstream_timeout', 'The token was not ready before the deadline')
  if (deadline.signal.aborted) return Promise.reject(timeout())
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(timeout())
    deadline.signal.addEventListener('abort', onAbort, { once: true })
    work.then(value => {
      deadline.signal.removeEventListener('abort', onAbort)
      deadline.dispose()
      resolve(value)
    }, (error: unknown) => {
      deadline.signal.removeEventListener('abort', onAbort)
      deadline.dispose()
      reject(error)
    })
  })
}
