import type { Clock, Deadline } from '../deadline.js'
import { ServiceError } from '../errors.js'
import type { AttemptGate, SendPermit } from './client.js'
import type { CallTimeEstimate } from './call-time-estimate.js'
import type { CircuitBreaker } from './circuit-breaker.js'
import type { DailyAllowance, DailyTicket } from './daily-allowance.js'
import { type Slot, acquireSlot, type OutboundBudget } from './outbound-budget.js'
import type { RoundTripFloor } from './round-trip-floor.js'
import type { ServiceEvents } from '../events.js'
import { NO_ATTRIBUTES, STAGE_ATTRIBUTES, STAGE_SPANS, withSpan } from '../telemetry/spans.js'

export interface HubSpotGateOptions {
  breaker: CircuitBreaker
  budget: OutboundBudget
  daily: DailyAllowance
  /** What a call needs of the deadline to be sent at all (and kept back while waiting for a slot). */
  callTime: CallTimeEstimate
  events: ServiceEvents
  clock: Clock
  /** Length of HubSpot's window: how long a 429 that names no wait pauses everyone. */
  windowMs: number
  /** The longest a call waits for a budget slot. */
  maxSlotWaitMs: number
  lateToleranceMs: number
  /** The budget's answer times, added to the tolerance (see RoundTripFloor). */
  roundTrip?: RoundTripFloor
}

/**
 * Breaker, then the call's time, the daily allowance and the budget, before every HubSpot attempt: an
 * open circuit costs no budget slot, and a half-open probe that is refused gives its turn back. A call
 * the deadline leaves too little time for is not sent (and waits for no slot): it could only time out
 * on the request's own deadline. The permit carries the slot, so a send held back for being late
 * renews that reservation instead of taking a second one.
 */
export function createHubSpotGate (options: HubSpotGateOptions): AttemptGate {
  const { breaker, budget, daily, callTime, events, clock, maxSlotWaitMs, lateToleranceMs, roundTrip } = options

  async function admit (deadline: Deadline): Promise<DailyTicket | undefined> {
    if (deadline.remainingMs() < callTime.needMs()) {
      throw new ServiceError('upstream_unavailable', 'Too little of this request\'s deadline is left for a HubSpot call', { retryAfterS: 1 })
    }
    return daily.take()
  }

  return {
    before: async deadline => {
      const probe = withSpan(STAGE_SPANS.breakerDecision, NO_ATTRIBUTES, () => breaker.admit(), isProbe => ({ [STAGE_ATTRIBUTES.breakerProbe]: isProbe }))
      let counted: DailyTicket | undefined
      try {
        counted = await admit(deadline)
      } catch (error) {
        if (probe) breaker.abandonProbe()
        throw error
      }
      const permitFor = async (missed?: Slot): Promise<SendPermit> => {
        let slot: Slot
        try {
          slot = await withSpan(STAGE_SPANS.budgetWait, { [STAGE_ATTRIBUTES.budgetRenewal]: missed !== undefined }, () => acquireSlot(budget, deadline, { events, clock, callHeadroomMs: callTime.needMs(), maxSlotWaitMs, lateToleranceMs, roundTrip }, missed))
        } catch (error) {
          // No call was made: neither the probe's turn nor the day's count was used.
          if (probe) breaker.abandonProbe()
          void daily.giveBack(counted)
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
    after: report => {
      callTime.record(report.durationMs)
      breaker.record(report)
    },
    rateLimited: waitHintMs => {
      // Every caller on every replica stays away until HubSpot's window has passed.
      void budget.pause(waitHintMs ?? options.windowMs)
    },
    dailyLimitReached: waitMs => {
      void daily.pause(waitMs)
    }
  }
}
