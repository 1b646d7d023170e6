import t from 'tap'
import type { AttemptReport } from '../../src/hubspot/client.js'
import { CircuitBreaker } from '../../src/hubspot/circuit-breaker.js'
import { noServiceEvents } from '../../src/events.js'
import { manualClock } from '../helper.js'

/** A replaced access token ends the pause that refused credentials caused, and only that pause. */

const report = (outcome: AttemptReport['outcome'], status?: number): AttemptReport => ({ outcome, status, durationMs: 10 })

t.test('after a 401, a new access token lets the next call probe at once', async t => {
  const breaker = new CircuitBreaker({ clock: manualClock(0), events: noServiceEvents, probeTimeoutMs: 5000 })
  breaker.record(report('rejected', 401))
  t.equal(breaker.state, 'open')
  breaker.credentialsChanged()
  t.equal(breaker.state, 'half-open')
  t.equal(breaker.admit(), true, 'one probe goes, with the new token')
  breaker.record(report('ok', 200))
  t.equal(breaker.state, 'closed')
})

t.test('a pause for HubSpot failing is not the token\'s doing: it stays', async t => {
  const breaker = new CircuitBreaker({ clock: manualClock(0), events: noServiceEvents, probeTimeoutMs: 5000 })
  for (let i = 0; i < 5; i++) breaker.record(report('server_error', 503))
  t.equal(breaker.state, 'open')
  breaker.credentialsChanged()
  t.equal(breaker.state, 'open')
})
