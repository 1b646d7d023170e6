/**
 * What the token machinery reports, for metrics and logs. The metrics module implements it; tests and
 * callers that do not care use `noTokenEvents`.
 */
export type BreakerState = 'closed' | 'open' | 'half-open'

/**
 * Why Redis cannot be fully relied on: it does not answer (`unreachable`), it answers reads but refuses
 * writes (`oom` at maxmemory with noeviction, `readonly` replica, `noperm` ACL, `misconf` failing
 * persistence), or it evicts keys at maxmemory (`evicting`).
 */
export type RedisDegradation = 'unreachable' | 'oom' | 'readonly' | 'noperm' | 'misconf' | 'evicting'
export const redisDegradations: readonly RedisDegradation[] = ['unreachable', 'oom', 'readonly', 'noperm', 'misconf', 'evicting']

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
  /** What is wrong with Redis now; undefined once it is fully usable again. */
  redisDegraded: (reason: RedisDegradation | undefined) => void
}

export const noTokenEvents: TokenEvents = {
  cacheHit: () => {},
  cacheMiss: () => {},
  budgetWaited: () => {},
  budgetRefused: () => {},
  sendHeldBack: () => {},
  breakerState: () => {},
  redisUp: () => {},
  redisDegraded: () => {}
}
