import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { HubSpotConfig } from '../config/types.js'
import type { Clock } from '../deadline.js'
import type { ServiceEvents } from '../events.js'
import type { ReadinessChecks } from '../readiness.js'
import type { RotatingValue } from '../secrets/rotating-value.js'
import { AccountDay } from './account-day.js'
import { CallTimeEstimate } from './call-time-estimate.js'
import { CircuitBreaker } from './circuit-breaker.js'
import { type AttemptReport, createHubSpotClient, type HubSpotClient } from './client.js'
import { HubSpotHealth } from './credential-health.js'
import { createMemoryDailyAllowance, createRedisDailyAllowance } from './daily-allowance.js'
import { createHubSpotGate } from './hubspot-gate.js'
import { createMemoryBudget, marginMs } from './outbound-budget.js'
import { createRedisBudget } from './redis-budget.js'
import { RoundTripFloor } from './round-trip-floor.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The HubSpot client, every attempt behind the breaker, the daily allowance and the outbound budget. */
    hubspot: HubSpotClient
  }
}

export interface HubSpotStageOptions {
  config: HubSpotConfig
  /** HUBSPOT_ACCESS_TOKEN as it stands after the latest rotation. */
  accessToken: RotatingValue<string>
  clock: Clock
  random?: () => number
  events: ServiceEvents
  readiness: ReadinessChecks
  /** Each attempt's outcome, for metrics. */
  onAttempt?: (report: AttemptReport) => void
}

/**
 * The longest a miss waits for a budget slot. A full burst of the budget spreads over at most 1 s
 * (slotSpacingMs), so a burst is still served; behind a budget that is simply spent, the caller hears
 * 503 with Retry-After at once instead of after most of its deadline.
 */
const MAX_SLOT_WAIT_MS = 1000

/**
 * The outbound side in one place: the HubSpot client and the guard every attempt passes (circuit
 * breaker, the daily allowance, the outbound budget; shared through Redis when the shared-state stage
 * has it), and HubSpot's health for /readyz. It closes its own connection pool.
 */
async function hubspotStagePlugin (app: FastifyInstance, options: HubSpotStageOptions): Promise<void> {
  const { config, clock, events } = options
  const { timeoutMs, rateLimit, rateLimitReplicas, dailyLimit } = config
  const redis = app.redis
  const day = new AccountDay(config.accountTimeZone)
  const budget = redis === undefined
    ? createMemoryBudget(rateLimit, clock)
    : createRedisBudget({ link: redis, budget: rateLimit, replicas: rateLimitReplicas, clock })
  const daily = redis === undefined
    ? createMemoryDailyAllowance({ limit: dailyLimit, day, clock })
    : createRedisDailyAllowance({ link: redis, limit: dailyLimit, day, clock, replicas: rateLimitReplicas })
  const breaker = new CircuitBreaker({ clock, events, probeTimeoutMs: timeoutMs })
  // Lateness a caller may have after its slot: half the window's margin, plus up to the other half for
  // the budget's own round trip, so never more than the margin in all.
  const halfMarginMs = marginMs(rateLimit.windowMs) / 2
  const gate = createHubSpotGate({
    breaker,
    budget,
    daily,
    // Before anything is known a call needs min(1 s, a fifth of the deadline); never more than half of it.
    callTime: new CallTimeEstimate({ floorMs: Math.min(1000, timeoutMs / 5), capMs: timeoutMs / 2 }),
    events,
    clock,
    windowMs: rateLimit.windowMs,
    maxSlotWaitMs: MAX_SLOT_WAIT_MS,
    lateToleranceMs: halfMarginMs,
    roundTrip: new RoundTripFloor(halfMarginMs)
  })

  const health = new HubSpotHealth()
  options.readiness.add('hubspot', health.check)
  // A new access token: what was seen with the old one says nothing about it, and a pause for refused
  // credentials ends at once.
  options.accessToken.onChange(() => {
    health.reset()
    breaker.credentialsChanged()
  })
  const client = createHubSpotClient(config, {
    clock,
    random: options.random,
    onAttempt: report => {
      health.record(report)
      options.onAttempt?.(report)
    },
    gate,
    accessToken: () => options.accessToken.current
  })
  app.decorate('hubspot', client)
  app.addHook('onClose', () => client.close())
}

export const hubspotStage = fp(hubspotStagePlugin, { name: 'hubspot', fastify: '5.x', dependencies: ['shared-state'] })
