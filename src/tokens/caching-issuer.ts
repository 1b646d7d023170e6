import type { FastifyBaseLogger } from 'fastify'
import type { Identity } from '../auth/identity.js'
import { type Clock, Deadline } from '../deadline.js'
import { ServiceError } from '../errors.js'
import type { HubSpotClient, MintedToken } from '../hubspot/client.js'
import { cacheKeyFor, type TokenStore } from './token-cache.js'
import type { TokenEvents } from './token-events.js'
import type { TokenIssuer } from './token-issuer.js'
import { NO_ATTRIBUTES, STAGE_ATTRIBUTES, STAGE_SPANS, withSpan } from '../telemetry/spans.js'

export interface CachingIssuerOptions {
  hubspot: HubSpotClient
  store: TokenStore
  /** HUBSPOT_TIMEOUT_MS: one deadline per request for waiting on a lock or a budget slot and the call. */
  timeoutMs: number
  clock: Clock
  events: TokenEvents
}

/**
 * cache → single-flight → (breaker → budget, in the HubSpot client's gate) → HubSpot.
 * Concurrent requests for one identity share one flight per process; the store makes it one across
 * replicas when it is shared.
 */
export function createCachingIssuer (options: CachingIssuerOptions): TokenIssuer {
  const { hubspot, store, timeoutMs, clock, events } = options
  const flights = new Map<string, Promise<MintedToken>>()

  async function tokenFor (identity: Identity, log: FastifyBaseLogger, receivedAt = clock.now()): Promise<MintedToken> {
    const startedAt = receivedAt
    const key = cacheKeyFor(identity)
    const cached = await withSpan(STAGE_SPANS.cacheLookup, NO_ATTRIBUTES, () => store.lookup(key), found => ({ [STAGE_ATTRIBUTES.cacheHit]: found !== undefined }))
    if (cached !== undefined) {
      events.cacheHit()
      return cached
    }
    events.cacheMiss()
    // Created on a miss only (cache hits need no timer), but counting from when the request was read.
    const deadline = new Deadline(Math.max(1, timeoutMs - (clock.now() - startedAt)), clock)
    const flightKey = `${key.email}\n${key.fingerprint}`
    let flight = flights.get(flightKey)
    const joined = flight !== undefined
    if (flight === undefined) {
      flight = store.fill(key, deadline, () => hubspot.createVisitorToken(identity, deadline, log))
      flights.set(flightKey, flight)
      const done = (): void => { flights.delete(flightKey) }
      flight.then(done, done)
    }
    return withSpan(STAGE_SPANS.singleFlightWait, { [STAGE_ATTRIBUTES.flightJoined]: joined }, () => withinDeadline(flight, deadline))
  }

  return {
    tokenFor,
    forget: identity => store.forget(identity.email)
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
