import t from 'tap'
import pino from 'pino'
import { loadConfig } from '../../src/config/load-config.js'
import { Deadline, systemClock } from '../../src/deadline.js'
import { ServiceError } from '../../src/errors.js'
import { type AttemptReport, createHubSpotClient } from '../../src/hubspot/client.js'
import { AccountDay } from '../../src/hubspot/account-day.js'
import { createServiceMetrics } from '../../src/metrics/service-metrics.js'
import { CallTimeEstimate } from '../../src/hubspot/call-time-estimate.js'
import { CircuitBreaker } from '../../src/hubspot/circuit-breaker.js'
import { createMemoryDailyAllowance } from '../../src/hubspot/daily-allowance.js'
import { createHubSpotGate } from '../../src/hubspot/hubspot-gate.js'
import { createMemoryBudget } from '../../src/hubspot/outbound-budget.js'
import { type BreakerState, noServiceEvents } from '../../src/events.js'
import { baseEnv, bearer, signSession, startEmulator, startService } from '../helper.js'

/**
 * HubSpot healthy but answering in 1.2 s. The circuit breaker must count only HubSpot's failures: a
 * call the request's own deadline cuts short says nothing about HubSpot, and is not sent when the
 * deadline clearly leaves it too little time.
 */

t.setTimeout(120_000)
const log = pino({ level: 'silent' })
const LATENCY_MS = 1200

t.test('a call sent with too little deadline left times out as `deadline`, not as a HubSpot failure; then such calls are not sent', async t => {
  const emulator = await startEmulator(t, { latencyMs: LATENCY_MS, rateLimit: { max: 1000, intervalMs: 1000 } })
  const config = loadConfig(baseEnv(emulator, { HUBSPOT_TIMEOUT_MS: '5000', HUBSPOT_MAX_RETRIES: '0' })).hubspot
  const states: BreakerState[] = []
  const breaker = new CircuitBreaker({ clock: systemClock, events: { ...noServiceEvents, breakerState: state => { states.push(state) } }, probeTimeoutMs: 5000 })
  const callTime = new CallTimeEstimate({ floorMs: 1000, capMs: 2500 })
  const gate = createHubSpotGate({
    breaker,
    budget: createMemoryBudget(config.rateLimit, systemClock),
    daily: createMemoryDailyAllowance({ limit: undefined, day: new AccountDay('UTC'), clock: systemClock }),
    callTime,
    events: noServiceEvents,
    clock: systemClock,
    windowMs: config.rateLimit.windowMs,
    maxSlotWaitMs: 1000,
    lateToleranceMs: 50
  })
  const reports: AttemptReport[] = []
  const client = createHubSpotClient(config, { gate, onAttempt: report => { reports.push(report) } })
  t.teardown(() => client.close())
  const identity = { email: 'ada@example.com' }

  // 1.1 s left: enough for the floor, too little for this HubSpot.
  const cut = await client.createVisitorToken(identity, new Deadline(1100), log).catch((error: unknown) => error)
  t.equal((cut as ServiceError).code, 'upstream_timeout')
  t.match(reports, [{ outcome: 'deadline' }], 'reported as the request\'s own deadline')
  t.ok(callTime.needMs() >= 1600, `and learnt from: a call now needs ${callTime.needMs()} ms`)
  for (let i = 0; i < 5; i++) {
    const refused = await client.createVisitorToken(identity, new Deadline(1100), log).catch((error: unknown) => error)
    t.equal((refused as ServiceError).code, 'upstream_unavailable', 'a call that cannot finish is not sent')
    t.equal((refused as ServiceError).retryAfterS, 1)
  }
  t.equal(emulator.calls().length, 1, 'HubSpot saw only the first')
  const minted = await client.createVisitorToken(identity, new Deadline(5000), log)
  t.type(minted.token, 'string', 'a call with its whole deadline goes, and is served')
  t.same(states, [], 'the breaker never left closed')
})

t.test('HubSpot answering in 1.2 s behind a saturated budget: the breaker never opens and nothing times out on HubSpot', async t => {
  const emulator = await startEmulator(t, { latencyMs: LATENCY_MS, rateLimit: { max: 1000, intervalMs: 1000 } })
  const metrics = createServiceMetrics({ processMetrics: false })
  const states: BreakerState[] = []
  const outcomes = new Map<string, number>()
  const service = await startService(t, baseEnv(emulator, {
    // Five calls a second for eighty people at once: most must wait for the budget or be refused.
    HUBSPOT_RATE_LIMIT: '5/1s',
    RATE_LIMIT_MAX: '100000',
    MAX_EVENT_LOOP_DELAY_MS: '0'
  }), {
    metrics: {
      ...metrics,
      hubspotAttempt: report => {
        outcomes.set(report.outcome, (outcomes.get(report.outcome) ?? 0) + 1)
        metrics.hubspotAttempt(report)
      },
      events: {
        ...metrics.events,
        breakerState: state => {
          states.push(state)
          metrics.events.breakerState(state)
        }
      }
    }
  })
  const statuses = new Map<number, number>()
  let next = 0
  // Eighty browsers, each bringing a new person, retrying a 503 after its Retry-After, three attempts in
  // all: each round finds the budget spent again.
  async function browser (): Promise<void> {
    const n = next++
    const headers = bearer(signSession({ sub: `person-${n}`, email: `person.${n}@example.com` }))
    for (let attempt = 0; attempt < 3; attempt++) {
      const answer = await service.get('/chat-token', headers)
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1)
      if (answer.status !== 503) break
      await new Promise(resolve => setTimeout(resolve, Number(answer.headers['retry-after']) * 1000))
    }
  }
  await Promise.all(Array.from({ length: 80 }, browser))
  t.comment(`answers: ${JSON.stringify(Object.fromEntries(statuses))}; HubSpot attempts: ${JSON.stringify(Object.fromEntries(outcomes))}`)
  t.same(states, [], 'the breaker never opened')
  t.notOk(outcomes.has('timeout'), 'no call was counted as HubSpot timing out')
  t.ok((statuses.get(200) ?? 0) > 0, 'people were served')
  t.notOk(statuses.has(504), 'and none waited into a timeout')
})
