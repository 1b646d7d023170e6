/**
 * What the service's stages report as they work (cache, outbound budget, breaker, Redis), for metrics.
 * The metrics module implements ServiceEvents; tests and embedders that do not care use `noServiceEvents`.
 * It lives at the top of src/ because every stage reports here and none may depend on another for it.
 */
export type BreakerState = 'closed' | 'open' | 'half-open'

/**
 * Why Redis cannot be fully relied on: it does not answer (`unreachable`), it answers reads but refuses
 * writes (`oom` at maxmemory with noeviction, `readonly` replica, `noperm` ACL, `misconf` failing
 * persistence), or it evicts keys at maxmemory (`evicting`).
 */
export type RedisDegradation = 'unreachable' | 'oom' | 'readonly' | 'noperm' | 'misconf' | 'evicting'
export const redisDegradations: readonly RedisDegradation[] = ['unreachable', 'oom', 'readonly', 'noperm', 'misconf', 'evicting']

export interface ServiceEvents {
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

export const noServiceEvents: ServiceEvents = {
  cacheHit: () => {},
  cacheMiss: () => {},
  budgetWaited: () => {},
  budgetRefused: () => {},
  sendHeldBack: () => {},
  breakerState: () => {},
  redisUp: () => {},
  redisDegraded: () => {}
}
