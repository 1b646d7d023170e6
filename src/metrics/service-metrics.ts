import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { AttemptReport } from '../hubspot/client.js'
import { type BreakerState, type RedisDegradation, redisDegradations, type ServiceEvents } from '../events.js'

/**
 * Everything the service measures, in one Prometheus registry per instance: tests build several apps
 * in one process, and a shared global registry would mix (or refuse to re-register) their series.
 */
export interface ServiceMetrics {
  registry: Registry
  /** One observation per answered request; `route` is the route pattern, never the raw URL. */
  observeRequest: (method: string, route: string, status: number, seconds: number) => void
  /** For the HubSpot client's `onAttempt`. */
  hubspotAttempt: (report: AttemptReport) => void
  /** For the token cache, budget, breaker and Redis code. */
  events: ServiceEvents
}

export interface ServiceMetricsOptions {
  /** Without Redis the `redis_up` gauge is left out, so an alert on it cannot fire for memory-only replicas. */
  redisConfigured?: boolean
  /** Node's process and runtime metrics (default true); they add a few timers, so tests may skip them. */
  processMetrics?: boolean
}

const PREFIX = 'chat_token_'
const breakerStates: BreakerState[] = ['closed', 'half-open', 'open']

export function createServiceMetrics (options: ServiceMetricsOptions = {}): ServiceMetrics {
  const registry = new Registry()
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry })

  const requestDuration = new Histogram({
    name: `${PREFIX}http_request_duration_seconds`,
    help: 'Time to answer a request on the public port, by method, route pattern and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry]
  })
  const hubspotCalls = new Counter({
    name: `${PREFIX}hubspot_requests_total`,
    help: 'Calls to HubSpot\'s token-create endpoint (each retry counts), by outcome and HTTP status ("none" when no answer came)',
    labelNames: ['outcome', 'status'] as const,
    registers: [registry]
  })
  const hubspotDuration = new Histogram({
    name: `${PREFIX}hubspot_request_duration_seconds`,
    help: 'Duration of one call to HubSpot\'s token-create endpoint, by outcome',
    labelNames: ['outcome'] as const,
    buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry]
  })
  const cacheLookups = new Counter({
    name: `${PREFIX}token_cache_lookups_total`,
    help: 'Identification-token cache lookups, by result (hit or miss)',
    labelNames: ['result'] as const,
    registers: [registry]
  })
  const budgetWait = new Histogram({
    name: `${PREFIX}hubspot_budget_wait_seconds`,
    help: 'Time a HubSpot call waited for a slot in the outbound rate budget',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry]
  })
  const budgetRefusals = new Counter({
    name: `${PREFIX}hubspot_budget_refusals_total`,
    help: 'HubSpot calls refused because no budget slot could be had before the request\'s deadline',
    registers: [registry]
  })
  const sendsHeldBack = new Counter({
    name: `${PREFIX}hubspot_sends_held_back_total`,
    help: 'HubSpot calls held back just before sending because they would have left later than their budget slot allows (they then move to now, or queue again)',
    registers: [registry]
  })
  const breakerState = new Gauge({
    name: `${PREFIX}hubspot_breaker_state`,
    help: 'Circuit breaker toward HubSpot: 1 for the current state, 0 for the others',
    labelNames: ['state'] as const,
    registers: [registry]
  })
  const redisUp = options.redisConfigured === true
    ? new Gauge({ name: `${PREFIX}redis_up`, help: '1 while Redis answers, 0 while it does not', registers: [registry] })
    : undefined
  const redisDegraded = options.redisConfigured === true
    ? new Gauge({
      name: `${PREFIX}redis_degraded`,
      help: '1 for what is wrong with Redis now (unreachable; oom, readonly, noperm, misconf: writes refused; evicting: keys evicted at maxmemory), 0 for the rest; all 0 while it is fully usable',
      labelNames: ['reason'] as const,
      registers: [registry]
    })
    : undefined

  // Series that alerts divide or compare exist from the start, so rate() and ratios work before the first event.
  cacheLookups.inc({ result: 'hit' }, 0)
  cacheLookups.inc({ result: 'miss' }, 0)
  const setBreakerState = (current: BreakerState): void => {
    for (const state of breakerStates) breakerState.set({ state }, state === current ? 1 : 0)
  }
  setBreakerState('closed')
  const setRedisDegraded = (current: RedisDegradation | undefined): void => {
    for (const reason of redisDegradations) redisDegraded?.set({ reason }, reason === current ? 1 : 0)
  }
  setRedisDegraded(undefined)

  return {
    registry,
    observeRequest: (method, route, status, seconds) => {
      requestDuration.observe({ method, route, status }, seconds)
    },
    hubspotAttempt: report => {
      hubspotCalls.inc({ outcome: report.outcome, status: report.status ?? 'none' })
      hubspotDuration.observe({ outcome: report.outcome }, report.durationMs / 1000)
    },
    events: {
      cacheHit: () => cacheLookups.inc({ result: 'hit' }),
      cacheMiss: () => cacheLookups.inc({ result: 'miss' }),
      budgetWaited: ms => budgetWait.observe(ms / 1000),
      budgetRefused: () => budgetRefusals.inc(),
      sendHeldBack: () => sendsHeldBack.inc(),
      breakerState: setBreakerState,
      redisUp: up => redisUp?.set(up ? 1 : 0),
      redisDegraded: setRedisDegraded
    }
  }
}
