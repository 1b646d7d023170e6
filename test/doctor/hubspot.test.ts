import t from 'tap'
import { AccountDay } from '../../src/hubspot/account-day.js'
import { ACCESS_TOKEN, baseEnv, startEmulator } from '../helper.js'
import { check, doctor } from './doctor-helper.js'

/** The doctor's HubSpot check against the emulator: every answer HubSpot can give, explained. */

const SCOPE = 'conversations.visitor_identification.tokens.create'

t.test('without --email: a request HubSpot must refuse proves the connection and the token, and mints nothing', async t => {
  const emulator = await startEmulator(t)
  const report = await doctor(baseEnv(emulator))
  const hubspot = check(report, 'hubspot')
  t.equal(hubspot.status, 'ok')
  t.match(hubspot.summary, `reached ${emulator.url} in `)
  t.match(hubspot.summary, /the access token is accepted$/)
  t.match(hubspot.details.join('\n'), /400 VALIDATION_ERROR\), so nothing was minted/)
  t.match(hubspot.facts, { mode: 'probe', status: 400 })
  const calls = emulator.calls()
  t.equal(calls.length, 1, 'one request')
  t.same(calls[0]!.body, {}, 'without an email')
  t.equal(calls[0]!.path, '/conversations/v3/visitor-identification/tokens/create')
  t.equal(calls[0]!.token, undefined, 'nothing minted')
  t.equal(report.exitCode, 0)
})

t.test('without --email, on a date version: the same probe on that version\'s path', async t => {
  const emulator = await startEmulator(t)
  const hubspot = check(await doctor(baseEnv(emulator, { HUBSPOT_API_VERSION: '2026-03' })), 'hubspot')
  t.equal(hubspot.status, 'ok')
  t.equal(emulator.calls()[0]!.path, '/visitor-identification/2026-03/tokens/create')
})

t.test('with --email: one real request through the service\'s client, and the token is genuine', async t => {
  const emulator = await startEmulator(t)
  const report = await doctor(baseEnv(emulator), { email: 'ops@company.example' })
  const hubspot = check(report, 'hubspot')
  t.equal(hubspot.status, 'ok')
  t.match(hubspot.summary, /^HubSpot minted a genuine identification token for ops@company\.example in \d+ ms \(\d+ characters, not shown\)$/)
  const calls = emulator.calls()
  t.equal(calls.length, 1)
  t.same(calls[0]!.body, { email: 'ops@company.example' })
  const token = calls[0]!.token!
  t.equal(emulator.issued(token)?.email, 'ops@company.example', 'the emulator issued it')
  t.equal(hubspot.facts.tokenLength, token.length)
  t.notOk(JSON.stringify(report).includes(token), 'the token is never shown')
  t.notOk(JSON.stringify(report).includes(ACCESS_TOKEN), 'the access token is never shown')
})

for (const withEmail of [false, true]) {
  const mode = withEmail ? 'with --email' : 'without --email'
  const args = withEmail ? { email: 'ops@company.example' } : {}

  t.test(`${mode}: 401 means the access token is wrong or revoked`, async t => {
    const emulator = await startEmulator(t, { accessTokens: ['another-token'] })
    const report = await doctor(baseEnv(emulator), args)
    const hubspot = check(report, 'hubspot')
    t.equal(hubspot.status, 'fail')
    t.match(hubspot.summary, /HubSpot refused the access token \(401 INVALID_AUTHENTICATION\)/)
    t.match(hubspot.details[0], /wrong or revoked/)
    t.match(hubspot.details.join('\n'), /correlationId for this answer: [0-9a-f-]{36}/)
    t.equal(report.exitCode, 1)
    t.equal(emulator.calls().length, 1, 'no retry')
  })

  t.test(`${mode}: 403 for a missing scope names the scope and the tier, the scope first`, async t => {
    const emulator = await startEmulator(t, { scopes: [] })
    const hubspot = check(await doctor(baseEnv(emulator), args), 'hubspot')
    t.equal(hubspot.status, 'fail')
    t.match(hubspot.summary, /\(403 MISSING_SCOPES\)/)
    const details = hubspot.details.join('\n')
    t.match(details, `lacks the scope ${SCOPE}`)
    t.match(details, /most likely this one/)
    t.match(details, /no Professional or Enterprise subscription/)
  })

  t.test(`${mode}: 403 for the account's tier names both causes`, async t => {
    const emulator = await startEmulator(t, { tierAllowed: false })
    const hubspot = check(await doctor(baseEnv(emulator), args), 'hubspot')
    t.equal(hubspot.status, 'fail')
    t.match(hubspot.summary, /\(403 FORBIDDEN\)/)
    const details = hubspot.details.join('\n')
    t.match(details, `lacks the scope ${SCOPE}`)
    t.notMatch(details, /most likely/)
    t.match(details, /no Professional or Enterprise subscription/)
  })

  t.test(`${mode}: 429 on the ten-second policy is a warning that says when calls go through again`, async t => {
    const emulator = await startEmulator(t, { rateLimit: { max: 0, intervalMs: 10_000 }, retryAfterOn429: true })
    const report = await doctor(baseEnv(emulator), args)
    const hubspot = check(report, 'hubspot')
    t.equal(hubspot.status, 'warn')
    t.match(hubspot.summary, /ten-second limit is reached \(429, policy TEN_SECONDLY_ROLLING\)/)
    t.match(hubspot.details[0], /calls go through again in \d+ s/)
    t.equal(report.exitCode, 0, 'a passing burst is not a broken deployment')
  })

  t.test(`${mode}: 429 on the DAILY policy fails and says when it resets, in the account's time zone`, async t => {
    const emulator = await startEmulator(t, { dailyLimit: 0 })
    const zone = 'America/New_York'
    const before = Date.now()
    const report = await doctor(baseEnv(emulator, { HUBSPOT_ACCOUNT_TIME_ZONE: zone }), args)
    const hubspot = check(report, 'hubspot')
    t.equal(hubspot.status, 'fail')
    t.match(hubspot.summary, /DAILY limit is used up \(429, policy DAILY\)/)
    t.match(hubspot.details[0], `resets at midnight in the account's time zone (HUBSPOT_ACCOUNT_TIME_ZONE=${zone})`)
    const resetsAt = Date.parse(String(hubspot.facts.resetsAt))
    const expected = new AccountDay(zone).nextReset(before)
    t.ok(Math.abs(resetsAt - expected) < 3000, `resets at ${new Date(expected).toISOString()}, said ${String(hubspot.facts.resetsAt)}`)
    t.equal(emulator.calls().length, 1, 'no retry')
  })

  t.test(`${mode}: HubSpot failing (500) and no endpoint at the base URL (404)`, async t => {
    const emulator = await startEmulator(t)
    emulator.setFaults({ sequence: [{ kind: 'status', status: 500 }] })
    const failing = check(await doctor(baseEnv(emulator), args), 'hubspot')
    t.equal(failing.status, 'fail')
    t.match(failing.summary, /HubSpot is failing \(500 INTERNAL_ERROR\)/)

    const wrongBase = check(await doctor(baseEnv(emulator, { HUBSPOT_BASE_URL: `${emulator.url}/api` }), args), 'hubspot')
    t.equal(wrongBase.status, 'fail')
    t.match(wrongBase.summary, /no token endpoint there \(404/)
    t.match(wrongBase.details[0], /Check HUBSPOT_BASE_URL/)
  })

  t.test(`${mode}: nothing listening says so, naming HUBSPOT_BASE_URL`, async t => {
    const emulator = await startEmulator(t)
    const url = emulator.url
    await emulator.close()
    const hubspot = check(await doctor(baseEnv(undefined, { HUBSPOT_BASE_URL: url })), 'hubspot')
    t.equal(hubspot.status, 'fail')
    t.match(hubspot.summary, /nothing accepts connections at 127\.0\.0\.1:\d+ \(ECONNREFUSED\): check HUBSPOT_BASE_URL's host and port/)
  })
}

t.test('a HubSpot host that does not resolve is named', async t => {
  const hubspot = check(await doctor(baseEnv(undefined, { HUBSPOT_BASE_URL: 'https://api.no-such-host.invalid', ALLOW_HTTP_UPSTREAMS: 'true' }), { email: 'ops@company.example' }), 'hubspot')
  t.equal(hubspot.status, 'fail')
  t.match(hubspot.summary, /the host "api\.no-such-host\.invalid" of HUBSPOT_BASE_URL does not resolve \((ENOTFOUND|EAI_AGAIN)\)/)
})

t.test('a HubSpot that does not answer in time', async t => {
  const emulator = await startEmulator(t)
  emulator.setFaults({ sequence: [{ kind: 'hang' }, { kind: 'hang' }] })
  for (const args of [{}, { email: 'ops@company.example' }]) {
    const hubspot = check(await doctor(baseEnv(emulator, { HUBSPOT_TIMEOUT_MS: '300' }), args), 'hubspot')
    t.equal(hubspot.status, 'fail')
    t.match(hubspot.summary, /127\.0\.0\.1:\d+ did not answer within 300 ms/)
  }
})
