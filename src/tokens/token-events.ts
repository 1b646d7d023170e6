/**
 * What the token machinery reports, for metrics and logs. The metrics module implements it; tests and
 * callers that do not care use `noTokenEvents`.
 */
export type BreakerState = 'closed' | 'open' | 'half-open'

export interface TokenEvents {
  cacheHit: () => void
  cacheMiss: () => void
  /** A call waited this long for a slot in the outbound HubSpot budget. */
  budgetWaited: (ms: number) => void
  /** A call was refused because no slot could be had before its deadline. */
  budgetRefused: () => void
  /** A call was held back at the socket: it would have left later than its slot allows. */
  sendHeldBack: () => void
  breakerState: (state: BreakerState) => void
  redisUp: (up: boolean) => void
}

export const noTokenEvents: TokenEvents = {
  cacheHit: () => {},
  cacheMiss: () => {},
  budgetWaited: () => {},
  budgetRefused: () => {},
  sendHeldBack: () => {},
  breakerState: () => {},
  redisUp: () => {}
}
