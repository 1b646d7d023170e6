import { DailyCounter, RollingWindow } from './rate-window.js'
import type { RateLimitOptions } from './types.js'

export interface RateLimits {
  rateLimit: RateLimitOptions
  dailyLimit: number
}

export type RatePolicy = 'DAILY' | 'TEN_SECONDLY_ROLLING'

export type RateDecision =
  | { allowed: true }
  | { allowed: false; policy: RatePolicy; retryAfterMs: number }

/** HubSpot's burst window and daily budget together; only requests that pass both are counted. */
export class RateLimiter {
  readonly #limits: () => RateLimits
  #window = new RollingWindow()
  #daily = new DailyCounter()

  constructor (limits: () => RateLimits) {
    this.#limits = limits
  }

  /** Admits the request (and counts it) or says which policy refused it. */
  admit (now: number): RateDecision {
    const { rateLimit, dailyLimit } = this.#limits()
    // Daily first: a client seeing DAILY must stop for the day, not retry in ten seconds.
    if (this.#daily.count(now) >= dailyLimit) {
      return { allowed: false, policy: 'DAILY', retryAfterMs: this.#daily.msUntilReset(now) }
    }
    if (this.#window.count(now, rateLimit.intervalMs) >= rateLimit.max) {
      const retryAfterMs = this.#window.msUntilBelow(now, rateLimit.intervalMs, rateLimit.max)
      return { allowed: false, policy: 'TEN_SECONDLY_ROLLING', retryAfterMs }
    }
    this.#window.add(now, rateLimit.intervalMs)
    this.#daily.add(now)
    return { allowed: true }
  }

  headers (now: number): Record<string, string> {
    const { rateLimit, dailyLimit } = this.#limits()
    const inWindow = this.#window.count(now, rateLimit.intervalMs)
    return {
      'X-HubSpot-RateLimit-Max': String(rateLimit.max),
      'X-HubSpot-RateLimit-Remaining': String(Math.max(0, rateLimit.max - inWindow)),
      'X-HubSpot-RateLimit-Interval-Milliseconds': String(rateLimit.intervalMs),
      'X-HubSpot-RateLimit-Daily': String(dailyLimit),
      'X-HubSpot-RateLimit-Daily-Remaining': String(Math.max(0, dailyLimit - this.#daily.count(now)))
    }
  }

  get maxInWindow (): number {
    return this.#window.maxInWindow
  }

  clear (): void {
    this.#window = new RollingWindow()
    this.#daily = new DailyCounter()
  }
}
