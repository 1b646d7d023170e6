import type { Clock } from '../deadline.js'
import { ServiceError } from '../errors.js'
import type { AttemptReport } from './client.js'
import type { BreakerState, ServiceEvents } from '../events.js'

/**
 * Stops calling HubSpot when calling cannot help. Two reasons to open:
 * - HubSpot refused the credentials (401, or 403 for scope or tier): every call would be refused the
 *   same way until an operator fixes the key, so answer 502 upstream_rejected for `rejectedOpenMs`.
 * - `failureThreshold` attempts in a row failed (5xx, timeout, connection): let HubSpot recover for
 *   `failingOpenMs`, answering 503 upstream_unavailable with Retry-After. Only HubSpot's failures count:
 *   a call cut off by its request's own short deadline (outcome `deadline`) is neither a failure nor a
 *   success, or a saturated budget, leaving callers little time, would open the circuit for everyone.
 * After that, half-open: exactly one probe call goes through; its outcome closes or re-opens the circuit.
 * Per process: each replica learns on its own within a handful of calls, which costs HubSpot little.
 */
export interface CircuitBreakerOptions {
  clock: Clock
  events: ServiceEvents
  failureThreshold?: number
  failingOpenMs?: number
  rejectedOpenMs?: number
  /** A probe that never reports (its request vanished) stops blocking after this long. */
  probeTimeoutMs: number
}

type OpenReason = 'rejected' | 'failing'

export class CircuitBreaker {
  readonly #clock: Clock
  readonly #events: ServiceEvents
  readonly #failureThreshold: number
  readonly #failingOpenMs: number
  readonly #rejectedOpenMs: number
  readonly #probeTimeoutMs: number
  #state: BreakerState = 'closed'
  #reason: OpenReason = 'failing'
  #openUntil = 0
  #probeSince: number | undefined
  #consecutiveFailures = 0

  constructor (options: CircuitBreakerOptions) {
    this.#clock = options.clock
    this.#events = options.events
    this.#failureThreshold = options.failureThreshold ?? 5
    this.#failingOpenMs = options.failingOpenMs ?? 5000
    this.#rejectedOpenMs = options.rejectedOpenMs ?? 30_000
    this.#probeTimeoutMs = options.probeTimeoutMs
  }

  get state (): BreakerState {
    if (this.#state === 'open' && this.#clock.now() >= this.#openUntil) this.#enter('half-open')
    return this.#state
  }

  /** Before an attempt: throws while open; returns true when this attempt is the half-open probe. */
  admit (): boolean {
    const now = this.#clock.now()
    switch (this.state) {
      case 'closed':
        return false
      case 'open':
        throw this.#refusal(this.#openUntil - now)
      case 'half-open':
        if (this.#probeSince !== undefined && now - this.#probeSince < this.#probeTimeoutMs) throw this.#refusal(1000)
        this.#probeSince = now
        return true
    }
  }

  /** The access token was replaced: a pause for refused credentials ends, and the next call probes with the new one. */
  credentialsChanged (): void {
    if (this.#state === 'open' && this.#reason === 'rejected') this.#openUntil = this.#clock.now()
  }

  /** The probe was admitted but never made its call (the budget refused it): let another one try. */
  abandonProbe (): void {
    this.#probeSince = undefined
  }

  record (report: AttemptReport): void {
    if (report.outcome === 'deadline') {
      // The request ran out of its own time: neither a failure nor a success of HubSpot's. A probe
      // that ends so proved nothing, so the next call may probe instead.
      this.#probeSince = undefined
      return
    }
    const credentialsRefused = report.outcome === 'rejected' && (report.status === 401 || report.status === 403)
    const failed = report.outcome === 'server_error' || report.outcome === 'timeout' || report.outcome === 'connection_error'
    if (credentialsRefused) {
      this.#open('rejected', this.#rejectedOpenMs)
    } else if (failed) {
      this.#consecutiveFailures += 1
      if (this.#state === 'half-open' || this.#consecutiveFailures >= this.#failureThreshold) this.#open('failing', this.#failingOpenMs)
    } else {
      // Any other answer (a token, a 400, a 429) shows HubSpot is up and takes our key.
      this.#consecutiveFailures = 0
      if (this.#state !== 'closed') this.#enter('closed')
    }
  }

  #open (reason: OpenReason, ms: number): void {
    this.#reason = reason
    this.#openUntil = this.#clock.now() + ms
    this.#enter('open')
  }

  #enter (state: BreakerState): void {
    this.#probeSince = undefined
    if (state === 'closed') this.#consecutiveFailures = 0
    if (state === this.#state) return
    this.#state = state
    this.#events.breakerState(state)
  }

  #refusal (retryInMs: number): ServiceError {
    return this.#reason === 'rejected'
      ? new ServiceError('upstream_rejected', 'HubSpot refused the access token moments ago; calls are paused until an operator fixes it or the pause ends')
      : new ServiceError('upstream_unavailable', 'HubSpot keeps failing; calls are paused for a few seconds', { retryAfterS: retryInMs / 1000 })
  }
}
