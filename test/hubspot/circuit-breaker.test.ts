import t from 'tap'
import { ServiceError } from '../../src/errors.js'
import type { AttemptReport } from '../../src/hubspot/client.js'
import { CircuitBreaker } from '../../src/hubspot/circuit-breaker.js'
import { type BreakerState, noServiceEvents } from '../../src/events.js'
import { manualClock } from '../helper.js'

const report = (outcome: AttemptReport['outcome'], status?: number): AttemptReport => ({ outcome, status, durationMs: 10 })

function setup (): { breaker: CircuitBreaker; clock: ReturnType<typeof manualClock>; states: BreakerState[] } {
  const clock = manualClock(0)
  const states: BreakerState[] = []
  const breaker = new CircuitBreaker({ clock, events: { ...noServiceEvents, breakerState: state => { states.push(state) } }, probeTimeoutMs: 5000 })
  return { breaker, clock, states }
}

function refusal (breaker: CircuitBreaker): ServiceError {
  try {
    breaker.admit()
  } catch (error) {
    if (error instanceof ServiceError) return error
  }
  throw new Error('expected the breaker to refuse')
}

t.test('a refused access token opens the circuit for 30 s with 502 upstream_rejected', async t => {
  for (const status of [401, 403]) {
    const { breaker, clock, states } = setup()
    breaker.record(report('rejected', status))
    t.equal(breaker.state, 'open')
    const error = refusal(breaker)
    t.equal(error.code, 'upstream_rejected')
    t.equal(error.status, 502)
    clock.advance(29_999)
    t.equal(refusal(breaker).code, 'upstream_rejected', 'still open just before 30 s')
    clock.advance(1)
    t.equal(breaker.admit(), true, 'half-open: this call is the probe')
    t.equal(refusal(breaker).code, 'upstream_rejected', 'exactly one probe')
    breaker.record(report('rejected', status))
    t.equal(breaker.state, 'open', 'the probe was refused too: open again')
    t.same(states, ['open', 'half-open', 'open'])
  }
})

t.test('a 400 is HubSpot working, not a broken key', async t => {
  const { breaker } = setup()
  breaker.record(report('rejected', 400))
  t.equal(breaker.state, 'closed')
  t.equal(breaker.admit(), false)
})

t.test('five failures in a row open the circuit for 5 s with 503 and Retry-After; then one probe', async t => {
  const { breaker, clock, states } = setup()
  for (const outcome of ['server_error', 'timeout', 'connection_error', 'server_error'] as const) breaker.record(report(outcome, 503))
  t.equal(breaker.admit(), false, 'four failures: still closed')
  breaker.record(report('server_error', 500))
  const error = refusal(breaker)
  t.equal(error.code, 'upstream_unavailable')
  t.equal(error.retryAfterS, 5)
  clock.advance(3000)
  t.equal(refusal(breaker).retryAfterS, 2)
  clock.advance(2000)
  t.equal(breaker.admit(), true, 'the probe')
  const waiting = refusal(breaker)
  t.equal(waiting.code, 'upstream_unavailable', 'others are refused while the probe is out')
  t.equal(waiting.retryAfterS, 1)
  breaker.record(report('ok', 200))
  t.equal(breaker.state, 'closed')
  t.equal(breaker.admit(), false)
  t.same(states, ['open', 'half-open', 'closed'])
})

t.test('a success resets the count: failures must be consecutive', async t => {
  const { breaker } = setup()
  for (let i = 0; i < 4; i++) breaker.record(report('server_error', 502))
  breaker.record(report('ok', 200))
  for (let i = 0; i < 4; i++) breaker.record(report('timeout'))
  t.equal(breaker.state, 'closed')
})

t.test('a failed probe re-opens for another 5 s', async t => {
  const { breaker, clock } = setup()
  for (let i = 0; i < 5; i++) breaker.record(report('connection_error'))
  clock.advance(5000)
  t.equal(breaker.admit(), true)
  breaker.record(report('timeout'))
  t.equal(breaker.state, 'open')
  t.equal(refusal(breaker).retryAfterS, 5)
})

t.test('a probe that never called (budget refused) or never reported stops blocking', async t => {
  const { breaker, clock } = setup()
  for (let i = 0; i < 5; i++) breaker.record(report('server_error', 500))
  clock.advance(5000)
  t.equal(breaker.admit(), true)
  breaker.abandonProbe()
  t.equal(breaker.admit(), true, 'the abandoned turn went to the next caller')
  clock.advance(4999)
  refusal(breaker)
  clock.advance(1)
  t.equal(breaker.admit(), true, 'a probe silent for the whole deadline is presumed lost')
})

t.test('a call cut off by its request\'s own short deadline is neither a failure nor a success', async t => {
  const { breaker, clock, states } = setup()
  for (let i = 0; i < 20; i++) breaker.record(report('deadline'))
  t.equal(breaker.state, 'closed', 'any number of them never opens the circuit')
  for (let i = 0; i < 4; i++) breaker.record(report('timeout'))
  breaker.record(report('deadline'))
  t.equal(breaker.state, 'closed')
  breaker.record(report('timeout'))
  t.equal(breaker.state, 'open', 'and they do not reset a run of real failures either')
  clock.advance(5000)
  t.equal(breaker.admit(), true, 'the probe')
  breaker.record(report('deadline'))
  t.equal(breaker.state, 'half-open', 'a probe cut off by its own deadline proved nothing')
  t.equal(breaker.admit(), true, 'so the next call probes at once')
  breaker.record(report('ok', 200))
  t.same(states, ['open', 'half-open', 'closed'])
})
