import t from 'tap'
import pino from 'pino'
import type { HubSpotConfig } from '../../src/config/types.js'
import { Deadline } from '../../src/deadline.js'
import { ServiceError } from '../../src/errors.js'
import { type AttemptGate, type AttemptReport, type HubSpotClientOptions, type SendPermit, createHubSpotClient, tokenPath } from '../../src/hubspot/client.js'
import type { Fault, HubSpotEmulator } from '../../dev/hubspot-emulator/emulator.js'
import { ACCESS_TOKEN, manualClock, startEmulator } from '../helper.js'

/** The HubSpot client against the emulator over real sockets: retries, deadlines and error mapping. */

const log = pino({ level: 'silent' })
const identity = { email: 'ada@example.com', firstName: 'Ada' }

function clientFor (t: { teardown: (fn: () => unknown) => void }, emulator: HubSpotEmulator, overrides: Partial<HubSpotConfig> = {}, clientOptions: HubSpotClientOptions = {}) {
  const client = createHubSpotClient({
    accessToken: ACCESS_TOKEN,
    baseUrl: emulator.url,
    apiVersion: 'v3',
    timeoutMs: 3000,
    maxRetries: 2,
    rateLimit: { max: 100, windowMs: 10_000 },
    rateLimitReplicas: 1,
    accountTimeZone: 'UTC',
    dailyLimit: undefined,
    ...overrides
  }, { random: () => 0, ...clientOptions })
  t.teardown(() => client.close())
  return client
}

async function failure (promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise
  } catch (error) {
    if (error instanceof ServiceError) return error
    throw error
  }
  throw new Error('expected a ServiceError')
}

const status = (code: number, extra: Partial<Extract<Fault, { kind: 'status' }>> = {}): Fault => ({ kind: 'status', status: code, ...extra })
const dailyBody = { status: 'error', message: 'You have reached your daily limit.', errorType: 'RATE_LIMIT', correlationId: 'c-1', policyName: 'DAILY' }

t.test('both path forms', async t => {
  t.equal(tokenPath('https://api.hubapi.com', 'v3'), '/conversations/v3/visitor-identification/tokens/create')
  t.equal(tokenPath('https://api.hubapi.com', '2026-09'), '/visitor-identification/2026-09/tokens/create')
  t.equal(tokenPath('https://gateway.example.com/hubspot/', '2026-03'), '/hubspot/visitor-identification/2026-03/tokens/create')

  const emulator = await startEmulator(t)
  const v3 = await clientFor(t, emulator).createVisitorToken(identity, new Deadline(3000), log)
  const dated = await clientFor(t, emulator, { apiVersion: '2026-03' }).createVisitorToken(identity, new Deadline(3000), log)
  const [first, second] = emulator.calls()
  t.equal(first?.path, '/conversations/v3/visitor-identification/tokens/create')
  t.same(first?.body, identity)
  t.equal(second?.path, '/visitor-identification/2026-03/tokens/create')
  t.same(second?.body, { ...identity, hsCustomerAgentContext: {} })
  t.equal(emulator.issued(v3.token)?.email, 'ada@example.com')
  t.equal(emulator.issued(dated.token)?.email, 'ada@example.com')
  t.not(v3.token, dated.token)
})

t.test('5xx and connection resets are retried', async t => {
  const emulator = await startEmulator(t)
  emulator.setFaults({ sequence: [status(500), { kind: 'reset' }] })
  const minted = await clientFor(t, emulator).createVisitorToken(identity, new Deadline(3000), log)
  t.ok(emulator.issued(minted.token))
  t.same(emulator.calls().map(call => call.status), [500, null, 200])
})

t.test('retries stop at HUBSPOT_MAX_RETRIES with 503 upstream_unavailable', async t => {
  const emulator = await startEmulator(t)
  emulator.setFaults({ sequence: [status(502), status(503), status(500), status(500)] })
  const error = await failure(clientFor(t, emulator).createVisitorToken(identity, new Deadline(3000), log))
  t.equal(error.code, 'upstream_unavailable')
  t.ok(error.retryAfterS !== undefined && error.retryAfterS >= 1)
  t.equal(emulator.calls().length, 3, 'one call and two retries')
})

t.test('Retry-After is honoured before a retry', async t => {
  const emulator = await startEmulator(t)
  emulator.setFaults({ sequence: [status(503, { headers: { 'retry-after': '1' } })] })
  await clientFor(t, emulator).createVisitorToken(identity, new Deadline(3000), log)
  const [first, second] = emulator.calls()
  t.ok(second!.at - first!.at >= 1000, `waited ${second!.at - first!.at} ms`)
})

t.test('a ten-second 429 is retried after Retry-After', async t => {
  const emulator = await startEmulator(t)
  const body = { status: 'error', message: 'You have reached your ten_secondly_rolling limit.', errorType: 'RATE_LIMIT', correlationId: 'c-2', policyName: 'TEN_SECONDLY_ROLLING' }
  emulator.setFaults({ sequence: [status(429, { body, headers: { 'retry-after': '1' } })] })
  await clientFor(t, emulator).createVisitorToken(identity, new Deadline(3000), log)
  const [first, second] = emulator.calls()
  t.equal(second?.status, 200)
  t.ok(second!.at - first!.at >= 1000)
})

t.test('a retry that cannot finish before the deadline is not started', async t => {
  const emulator = await startEmulator(t)
  const body = { status: 'error', message: 'You have reached your ten_secondly_rolling limit.', errorType: 'RATE_LIMIT', policyName: 'TEN_SECONDLY_ROLLING' }
  emulator.setFaults({ sequence: [status(429, { body, headers: { 'x-hubspot-ratelimit-interval-milliseconds': '10000' } })] })
  const started = Date.now()
  const error = await failure(clientFor(t, emulator, { timeoutMs: 2000 }).createVisitorToken(identity, new Deadline(2000), log))
  t.equal(error.code, 'upstream_unavailable')
  t.equal(error.retryAfterS, 10, 'tells the caller to come back after the window')
  t.equal(emulator.calls().length, 1)
  t.ok(Date.now() - started < 1000, 'answers at once instead of waiting')
})

t.test('a DAILY 429 is never retried', async t => {
  const emulator = await startEmulator(t)
  emulator.setFaults({ sequence: [status(429, { body: dailyBody })] })
  const error = await failure(clientFor(t, emulator).createVisitorToken(identity, new Deadline(3000), log))
  t.equal(error.code, 'upstream_unavailable')
  t.equal(emulator.calls().length, 1)
  const untilMidnight = (new Date().setUTCHours(24, 0, 0, 0) - Date.now()) / 1000
  t.ok(Math.abs(error.retryAfterS! - untilMidnight) < 5, 'Retry-After runs to the estimated reset')
})

t.test('a DAILY 429 waits until midnight in the account\'s time zone, and tells the gate so every replica pauses', async t => {
  const emulator = await startEmulator(t)
  emulator.setFaults({ sequence: [status(429, { body: dailyBody })] })
  // 20:30 in Los Angeles on the eve of the spring DST change: midnight there is 3.5 hours away.
  const clock = manualClock(Date.parse('2026-03-07T20:30:00-08:00'))
  const paused: number[] = []
  const gate: AttemptGate = {
    before: async () => undefined,
    after: () => {},
    rateLimited: () => { t.fail('a DAILY 429 is not the ten-second window') },
    dailyLimitReached: waitMs => { paused.push(waitMs) }
  }
  const client = clientFor(t, emulator, { accountTimeZone: 'America/Los_Angeles' }, { gate, clock })
  const error = await failure(client.createVisitorToken(identity, new Deadline(3000), log))
  t.equal(error.code, 'upstream_unavailable')
  t.equal(error.retryAfterS, 3.5 * 3600)
  t.same(paused, [3.5 * 3600 * 1000])
})

t.test('refusals are not retried and map to upstream_rejected', async t => {
  const emulator = await startEmulator(t)
  const cases: Array<[string, () => void]> = [
    ['bad access token', () => emulator.configure({ accessTokens: ['another'] })],
    ['missing scope', () => emulator.configure({ scopes: [] })],
    ['tier', () => emulator.configure({ tierAllowed: false })],
    ['400', () => emulator.setFaults({ sequence: [status(400)] })],
    ['redirect', () => emulator.setFaults({ sequence: [{ kind: 'redirect', location: 'https://evil.example.com/' }] })],
    ['malformed JSON', () => emulator.setFaults({ sequence: [{ kind: 'malformed-json' }] })],
    ['wrong JSON', () => emulator.setFaults({ sequence: [{ kind: 'wrong-json' }] })],
    ['oversized body', () => emulator.setFaults({ sequence: [{ kind: 'oversized' }] })]
  ]
  const client = clientFor(t, emulator)
  for (const [name, arrange] of cases) {
    emulator.reset()
    arrange()
    const error = await failure(client.createVisitorToken(identity, new Deadline(3000), log))
    t.equal(error.code, 'upstream_rejected', name)
    t.equal(emulator.calls().length, 1, `${name}: no retry`)
    t.notMatch(error.message, new RegExp(ACCESS_TOKEN), `${name}: no secret in the detail`)
  }
})

t.test('a hanging HubSpot gives 504 close to the deadline', async t => {
  const emulator = await startEmulator(t)
  emulator.setFaults({ sequence: [{ kind: 'hang' }] })
  const started = Date.now()
  const error = await failure(clientFor(t, emulator, { timeoutMs: 600 }).createVisitorToken(identity, new Deadline(600), log))
  const elapsed = Date.now() - started
  t.equal(error.code, 'upstream_timeout')
  t.ok(elapsed >= 550 && elapsed < 1500, `answered after ${elapsed} ms`)
})

t.test('a body that trickles past the deadline gives 504', async t => {
  const emulator = await startEmulator(t)
  emulator.setFaults({ sequence: [{ kind: 'trickle', bytesPerSecond: 1 }] })
  const error = await failure(clientFor(t, emulator).createVisitorToken(identity, new Deadline(700), log))
  t.equal(error.code, 'upstream_timeout')
})

t.test('an unreachable HubSpot gives 503 after the retries', async t => {
  const emulator = await startEmulator(t)
  const client = clientFor(t, emulator)
  await emulator.close()
  const error = await failure(client.createVisitorToken(identity, new Deadline(2000), log))
  t.equal(error.code, 'upstream_unavailable')
})

t.test('an attempt held back for leaving after its send-by time is renewed and sent once', async t => {
  const emulator = await startEmulator(t)
  const reports: AttemptReport[] = []
  let renewals = 0
  const onTime: SendPermit = { sendBy: Date.now() + 60_000, renew: async () => { throw new Error('an on-time permit is not renewed') } }
  const gate: AttemptGate = {
    // Already past its send-by time when the request reaches the socket: undici must not write it.
    before: async () => ({ sendBy: Date.now() - 1, renew: async () => { renewals++; return onTime } }),
    after: report => { reports.push(report) },
    rateLimited: () => {},
    dailyLimitReached: () => {}
  }
  const client = clientFor(t, emulator, {}, { gate })
  const minted = await client.createVisitorToken(identity, new Deadline(3000), log)
  t.type(minted.token, 'string')
  t.equal(renewals, 1, 'renewed once')
  t.equal(emulator.calls().length, 1, 'HubSpot saw one call, not two')
  t.match(reports, [{ outcome: 'ok', status: 200 }], 'and one attempt is reported')
})

t.test('a held-back attempt whose renewal the budget refuses sends nothing and reports no attempt', async t => {
  const emulator = await startEmulator(t)
  const reports: AttemptReport[] = []
  const gate: AttemptGate = {
    before: async () => ({
      sendBy: Date.now() - 1,
      renew: async () => { throw new ServiceError('upstream_unavailable', 'no slot before the deadline', { retryAfterS: 2 }) }
    }),
    after: report => { reports.push(report) },
    rateLimited: () => {},
    dailyLimitReached: () => {}
  }
  const client = clientFor(t, emulator, {}, { gate })
  const error = await failure(client.createVisitorToken(identity, new Deadline(3000), log))
  t.equal(error.code, 'upstream_unavailable')
  t.equal(error.retryAfterS, 2)
  t.equal(emulator.calls().length, 0, 'HubSpot saw nothing')
  t.same(reports, [], 'no attempt reached HubSpot, so the breaker hears of none')
})
