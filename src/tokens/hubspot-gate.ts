import type { Clock } from '../deadline.js'
import type { AttemptGate } from '../hubspot/client.js'
import type { CircuitBreaker } from './circuit-breaker.js'
import { acquireSlot, type OutboundBudget } from './outbound-budget.js'
import type { TokenEvents } from './token-events.js'

export interface HubSpotGateOptions {
  breaker: CircuitBreaker
  budget: OutboundBudget
  events: TokenEvents
  clock: Clock
  /** Length of HubSpot's window: how long a 429 that names no wait pauses everyone. */
  windowMs: number
  callHeadroomMs: number
  lateToleranceMs: number
}

/**
 * Breaker, then budget, before every HubSpot attempt: an open circuit costs no budget slot, and a
 * half-open probe that the budget refuses gives its turn back.
 */
export function createHubSpotGate (options: HubSpotGateOptions): AttemptGate {
  const { breaker, budget, events, clock, callHeadroomMs, lateToleranceMs } = options
  return {
    before: async deadline => {
      const probe = breaker.admit()
      try {
        await acquireSlot(budget, deadline, { events, clock, callHeadroomMs, lateToleranceMs })
      } catch (error) {
        if (probe) breaker.abandonProbe()
        throw error
      }
    },
    after: report => breaker.record(report),
    rateLimited: waitHintMs => {
      // Every caller on every replica stays away until HubSpot's window has passed.
      void budget.pause(waitHintMs ?? options.windowMs)
    }
  }
}
