import type { Clock } from '../deadline.js'
import type { AttemptGate, SendPermit } from '../hubspot/client.js'
import type { CircuitBreaker } from './circuit-breaker.js'
import { type Slot, acquireSlot, type OutboundBudget } from './outbound-budget.js'
import type { TokenEvents } from './token-events.js'
import { NO_ATTRIBUTES, STAGE_ATTRIBUTES, STAGE_SPANS, withSpan } from '../telemetry/spans.js'

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
 * half-open probe that the budget refuses gives its turn back. The permit carries the slot, so a send
 * held back for being late renews that reservation instead of taking a second one.
 */
export function createHubSpotGate (options: HubSpotGateOptions): AttemptGate {
  const { breaker, budget, events, clock, callHeadroomMs, lateToleranceMs } = options
  return {
    before: async deadline => {
      const probe = withSpan(STAGE_SPANS.breakerDecision, NO_ATTRIBUTES, () => breaker.admit(), isProbe => ({ [STAGE_ATTRIBUTES.breakerProbe]: isProbe }))
      const permitFor = async (missed?: Slot): Promise<SendPermit> => {
        let slot: Slot
        try {
          slot = await withSpan(STAGE_SPANS.budgetWait, { [STAGE_ATTRIBUTES.budgetRenewal]: missed !== undefined }, () => acquireSlot(budget, deadline, { events, clock, callHeadroomMs, lateToleranceMs }, missed))
        } catch (error) {
          if (probe) breaker.abandonProbe()
          throw error
        }
        return {
          sendBy: slot.sendBy,
          renew: async () => {
            events.sendHeldBack()
            return permitFor(slot)
          }
        }
      }
      return permitFor()
    },
    after: report => breaker.record(report),
    rateLimited: waitHintMs => {
      // Every caller on every replica stays away until HubSpot's window has passed.
      void budget.pause(waitHintMs ?? options.windowMs)
    }
  }
}
