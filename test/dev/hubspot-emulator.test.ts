import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { createHubSpotEmulator, type EmulatorOptions, type HubSpotEmulator } from '../../dev/hubspot-emulator/emulator.js'
import { DailyCounter, RollingWindow } from '../../dev/hubspot-emulator/rate-window.js'

const TOKEN = 'emulator-access-token'
const SCOPE = 'conversations.visitor_identification.tokens.create'
const LEGACY = '/conversations/v3/visitor-identification/tokens/create'
const ALIAS = '/visitor-identification/v3/tokens/create'
const DATED = '/visitor-identification/2026-03/tokens/create'
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

async function start (t: Test, options?: EmulatorOptions): Promise<HubSpotEmulator> {
  const emulator = await createHubSpotEmulator(options)
  t.teardown(() => emulator.close())
  return emulator
}

interface CreateOptions {
  path?: string
  token?: string | null
  body?: unknown
  rawBody?: string
  headers?: Record<string, string>
  signal?: AbortSignal
  redirect?: 'follow' | 'manual' | 'error'
}

function create (emulator: HubSpotEmulator, options: CreateOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...options.headers }
  const token = options.token === undefined ? TOKEN : options.token
  if (token !== null) headers.authorization = `Bearer ${token}`
  return fetch(emulator.url + (options.path ?? LEGACY), {
    method: 'POST',
    headers,
    body: options.rawBody ?? JSON.stringify(options.body ?? { email: 'ada@example.com' }),
    ...(options.signal && { signal: options.signal }),
    ...(options.redirect && { redirect: options.redirect })
  })
}

async function json (response: Response): Promise<Record<string, unknown>> {
  return await response.json() as Record<string, unknown>
}

function control (emulator: HubSpotEmulator, path: string, body?: unknown): Promise<Response> {
  return fetch(`${emulator.url}/__emulator${path}`, body === undefined
    ? {}
    : { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) })
}

t.test('rolling window counts requests younger than the interval, on a driven clock', async t => {
  const window = new RollingWindow()
  t.equal(window.add(1000, 100), 1)
  t.equal(window.add(1050, 100), 2)
  t.equal(window.add(1099, 100), 3)
  t.equal(window.count(1099, 100), 3)
  t.equal(window.msUntilBelow(1099, 100, 3), 1, 'the oldest leaves at 1100')
  t.equal(window.msUntilBelow(1099, 100, 2), 51, 'two must leave to get below 2')
  t.equal(window.msUntilBelow(1099, 100, 10), 0)
  t.equal(window.count(1100, 100), 2)
  t.equal(window.add(1200, 100), 1)
  t.equal(window.maxInWindow, 3)
})

t.test('daily counter starts over at UTC midnight', async t => {
  const counter = new DailyCounter()
  const lateInDay = Date.parse('2026-11-26T23:59:59.000Z')
  counter.add(lateInDay)
  counter.add(lateInDay)
  t.equal(counter.count(lateInDay), 2)
  t.equal(counter.msUntilReset(lateInDay), 1000)
  t.equal(counter.count(lateInDay + 1000), 0)
})

t.test('issues an opaque token on every create path and remembers it', async t => {
  const emulator = await start(t)
  const tokens: string[] = []
  for (const path of [LEGACY, ALIAS, DATED]) {
    const body = path === DATED
      ? { email: 'ada@example.com', firstName: 'Ada', lastName: 'Lovelace', hsCustomerAgentContext: { plan: 'pro' } }
      : { email: 'ada@example.com', firstName: 'Ada', lastName: 'Lovelace' }
    const response = await create(emulator, { path, body })
    t.equal(response.status, 200, path)
    t.equal(response.headers.get('content-type'), 'application/json;charset=utf-8')
    const { token } = await json(response)
    t.type(token, 'string')
    t.match(token, /^[A-Za-z0-9_-]{43,}$/)
    tokens.push(token as string)

    const issued = emulator.issued(token as string)!
    t.match(issued, { email: 'ada@example.com', firstName: 'Ada', lastName: 'Lovelace', path })
    t.equal(Date.parse(issued.expiresAt) - Date.parse(issued.issuedAt), 12 * 60 * 60 * 1000)
    const viaControl = await control(emulator, `/tokens/${token as string}`)
    t.equal(viaControl.status, 200)
    t.same(await viaControl.json(), issued)
  }
  t.equal(new Set(tokens).size, 3, 'every call returns a new token')
  t.equal(emulator.issued('never-issued'), undefined)
  t.equal((await control(emulator, '/tokens/never-issued')).status, 404)

  const calls = emulator.calls()
  t.equal(calls.length, 3)
  t.match(calls[0], { method: 'POST', path: LEGACY, authorization: `Bearer ${TOKEN}`, status: 200, body: { email: 'ada@example.com' } })
  t.notOk('fault' in calls[0]!)
  t.same(await (await control(emulator, '/calls')).json(), calls)
})

t.test('401 when the bearer token is missing or unknown', async t => {
  const emulator = await start(t, { rateLimit: { max: 5, intervalMs: 10_000 } })
  for (const token of [null, 'wrong-token']) {
    const response = await create(emulator, { token })
    t.equal(response.status, 401)
    t.equal(response.headers.get('x-hubspot-ratelimit-remaining'), '5', 'auth failures do not count')
    const body = await json(response)
    t.match(body, { status: 'error', category: 'INVALID_AUTHENTICATION', message: /^Authentication credentials not found\./ })
    t.match(body.correlationId, UUID)
  }
  const basic = await create(emulator, { token: null, headers: { authorization: `Basic ${TOKEN}` } })
  t.equal(basic.status, 401)
  t.equal(emulator.calls()[0]!.authorization, undefined)
})

t.test('403 MISSING_SCOPES when the token lacks the scope', async t => {
  const emulator = await start(t, { scopes: ['crm.objects.contacts.read'] })
  const response = await create(emulator)
  t.equal(response.status, 403)
  t.match(await json(response), {
    status: 'error',
    category: 'MISSING_SCOPES',
    correlationId: UUID,
    errors: [{ message: String, context: { requiredScopes: [SCOPE] } }],
    links: { scopes: String }
  })
})

t.test('403 FORBIDDEN for a portal without the tier, after the scope check', async t => {
  const emulator = await start(t, { tierAllowed: false })
  const response = await create(emulator)
  t.equal(response.status, 403)
  t.match(await json(response), { status: 'error', category: 'FORBIDDEN', message: /subscription/ })
  emulator.configure({ scopes: [] })
  t.match(await json(await create(emulator)), { category: 'MISSING_SCOPES' })
  emulator.configure({ scopes: [SCOPE], tierAllowed: true })
  t.equal((await create(emulator)).status, 200)
})

t.test('400 VALIDATION_ERROR for bad bodies', async t => {
  const emulator = await start(t)
  const cases: Array<[string, CreateOptions, Record<string, unknown>]> = [
    ['missing email', { body: { firstName: 'Ada' } }, { errors: [{ in: 'email', code: 'REQUIRED_FIELD' }] }],
    ['empty email', { body: { email: '' } }, { errors: [{ in: 'email', code: 'REQUIRED_FIELD' }] }],
    ['email without @', { body: { email: 'ada.example.com' } }, { errors: [{ in: 'email', code: 'INVALID_EMAIL' }] }],
    ['email with two @', { body: { email: 'a@b@example.com' } }, { errors: [{ in: 'email', code: 'INVALID_EMAIL' }] }],
    ['email with a space', { body: { email: 'ada lovelace@example.com' } }, { errors: [{ in: 'email', code: 'INVALID_EMAIL' }] }],
    ['email with empty domain', { body: { email: 'ada@' } }, { errors: [{ in: 'email', code: 'INVALID_EMAIL' }] }],
    ['email too long', { body: { email: `${'a'.repeat(250)}@example.com` } }, { errors: [{ in: 'email', code: 'INVALID_EMAIL' }] }],
    ['email not a string', { body: { email: 42 } }, { errors: [{ in: 'email', code: 'INVALID_EMAIL' }] }],
    ['firstName not a string', { body: { email: 'ada@example.com', firstName: 1 } }, { errors: [{ in: 'firstName' }] }],
    ['invalid JSON', { rawBody: '{"email":' }, { message: /Invalid input JSON/ }],
    ['array body', { body: [{ email: 'ada@example.com' }] }, { message: /JSON object/ }],
    ['bad hsCustomerAgentContext', { path: DATED, body: { email: 'ada@example.com', hsCustomerAgentContext: { a: 1 } } },
      { errors: [{ in: 'hsCustomerAgentContext' }] }]
  ]
  for (const [name, options, expected] of cases) {
    const response = await create(emulator, options)
    t.equal(response.status, 400, name)
    t.match(await json(response), { status: 'error', category: 'VALIDATION_ERROR', correlationId: UUID, ...expected }, name)
  }
  const legacyIgnoresContext = await create(emulator, { body: { email: 'ada@example.com', hsCustomerAgentContext: 'x' } })
  t.equal(legacyIgnoresContext.status, 200, 'v3 schema has no hsCustomerAgentContext, so it is ignored')
  t.equal(emulator.calls()[9]!.body, '{"email":', 'unparseable bodies are recorded raw')
})

t.test('413 for bodies over 64 KiB, 415 for non-JSON content types', async t => {
  const emulator = await start(t)
  const big = await create(emulator, { body: { email: 'ada@example.com', padding: 'x'.repeat(70 * 1024) } })
  t.equal(big.status, 413)
  t.match(await json(big), { status: 'error', category: 'VALIDATION_ERROR' })
  const text = await create(emulator, { headers: { 'content-type': 'text/plain' } })
  t.equal(text.status, 415)
  t.equal((await create(emulator, { headers: { 'content-type': 'application/json; charset=UTF-8' } })).status, 200)
})

t.test('404 for unknown routes and date versions, 405 for other methods', async t => {
  const emulator = await start(t)
  for (const path of ['/nope', '/visitor-identification/2026-13/tokens/create', '/visitor-identification/v4/tokens/create', `${LEGACY}/`]) {
    const response = await create(emulator, { path })
    t.equal(response.status, 404, path)
    t.match(await json(response), { status: 'error', category: String, correlationId: UUID, message: String })
    t.ok(response.headers.get('x-hubspot-ratelimit-max'))
  }
  for (const method of ['GET', 'PUT', 'DELETE']) {
    const response = await fetch(emulator.url + LEGACY, { method, headers: { authorization: `Bearer ${TOKEN}` } })
    t.equal(response.status, 405, method)
    t.equal(response.headers.get('allow'), 'POST')
    t.match(await json(response), { status: 'error', correlationId: UUID })
  }
})

t.test('rate-limit headers on every API answer', async t => {
  const emulator = await start(t, { rateLimit: { max: 10, intervalMs: 1000 }, dailyLimit: 500 })
  for (let i = 1; i <= 3; i += 1) {
    const response = await create(emulator)
    t.equal(response.headers.get('x-hubspot-ratelimit-max'), '10')
    t.equal(response.headers.get('x-hubspot-ratelimit-remaining'), String(10 - i))
    t.equal(response.headers.get('x-hubspot-ratelimit-interval-milliseconds'), '1000')
    t.equal(response.headers.get('x-hubspot-ratelimit-daily'), '500')
    t.equal(response.headers.get('x-hubspot-ratelimit-daily-remaining'), String(500 - i))
  }
  const invalid = await create(emulator, { body: {} })
  t.equal(invalid.status, 400)
  t.equal(invalid.headers.get('x-hubspot-ratelimit-remaining'), '6', 'validation failures count, like on HubSpot')
  t.equal(invalid.headers.get('content-type'), 'application/json;charset=utf-8')
})

t.test('rolling window: 429 past the limit, recovery after the interval', async t => {
  const emulator = await start(t, { rateLimit: { max: 3, intervalMs: 200 } })
  for (let i = 0; i < 3; i += 1) t.equal((await create(emulator)).status, 200)
  const limited = await create(emulator)
  t.equal(limited.status, 429)
  t.equal(limited.headers.get('retry-after'), null, 'no Retry-After unless asked for')
  t.equal(limited.headers.get('x-hubspot-ratelimit-remaining'), '0')
  t.match(await json(limited), {
    status: 'error',
    message: 'You have reached your ten_secondly_rolling limit.',
    errorType: 'RATE_LIMIT',
    correlationId: UUID,
    policyName: 'TEN_SECONDLY_ROLLING'
  })

  let status = 429
  const deadline = Date.now() + 2000
  while (status === 429 && Date.now() < deadline) {
    await sleep(20)
    status = (await create(emulator)).status
  }
  t.equal(status, 200, 'the window frees up')
  t.equal(emulator.maxInWindow(), 3)
  const stats = await json(await control(emulator, '/stats'))
  t.equal(stats.accepted, 4)
  t.equal(stats.maxInWindow, 3)
  t.equal(stats.calls, 4 + (stats.rejected429 as number))
  t.ok((stats.rejected429 as number) >= 1)
})

t.test('Retry-After on 429 when asked for', async t => {
  const emulator = await start(t, { rateLimit: { max: 1, intervalMs: 1500 }, retryAfterOn429: true })
  t.equal((await create(emulator)).status, 200)
  const limited = await create(emulator)
  t.equal(limited.status, 429)
  t.equal(limited.headers.get('retry-after'), '2')
})

t.test('daily limit: 429 with the DAILY policy', async t => {
  const emulator = await start(t, { dailyLimit: 2 })
  t.equal((await create(emulator)).status, 200)
  t.equal((await create(emulator)).status, 200)
  const limited = await create(emulator)
  t.equal(limited.status, 429)
  t.equal(limited.headers.get('x-hubspot-ratelimit-daily-remaining'), '0')
  t.match(await json(limited), { message: 'You have reached your daily limit.', errorType: 'RATE_LIMIT', policyName: 'DAILY' })
})

t.test('maxInWindow tracks the busiest window under concurrency', async t => {
  const emulator = await start(t, { rateLimit: { max: 5, intervalMs: 10_000 } })
  const statuses = await Promise.all(Array.from({ length: 8 }, async () => (await create(emulator)).status))
  t.equal(statuses.filter(status => status === 200).length, 5)
  t.equal(statuses.filter(status => status === 429).length, 3)
  t.equal(emulator.maxInWindow(), 5)
  t.same(emulator.stats(), { calls: 8, accepted: 5, rejected429: 3, maxInWindow: 5 })
})

t.test('faults: status', async t => {
  const emulator = await start(t)
  emulator.setFaults({
    sequence: [
      { kind: 'status', status: 503 },
      { kind: 'status', status: 429, body: { status: 'error', policyName: 'SECONDLY' }, headers: { 'Retry-After': '7' } },
      { kind: 'status', status: 502, body: '<html>bad gateway</html>', headers: { 'content-type': 'text/html' } }
    ]
  })
  const unavailable = await create(emulator)
  t.equal(unavailable.status, 503)
  t.match(await json(unavailable), { status: 'error', correlationId: UUID })
  t.ok(unavailable.headers.get('x-hubspot-ratelimit-max'))
  const custom429 = await create(emulator)
  t.equal(custom429.status, 429)
  t.equal(custom429.headers.get('retry-after'), '7')
  t.same(await custom429.json(), { status: 'error', policyName: 'SECONDLY' })
  const html = await create(emulator)
  t.equal(html.headers.get('content-type'), 'text/html')
  t.equal(await html.text(), '<html>bad gateway</html>')
  t.equal((await create(emulator)).status, 200, 'normal behaviour resumes after the sequence')
  t.same(emulator.calls().map(call => call.fault), ['status:503', 'status:429', 'status:502', undefined])
  t.equal(emulator.stats().rejected429, 1)
})

t.test('faults: the sequence is consumed before the auth check', async t => {
  const emulator = await start(t)
  emulator.setFaults({ sequence: [{ kind: 'wrong-json' }] })
  const faulted = await create(emulator, { token: null })
  t.equal(faulted.status, 200)
  t.same(await faulted.json(), { token: 42 })
  t.equal((await create(emulator, { token: null })).status, 401)
})

t.test('faults: connection-level failures', async t => {
  const emulator = await start(t)
  emulator.setFaults({ sequence: [{ kind: 'reset' }, { kind: 'reset-mid-body' }, { kind: 'hang' }] })

  await t.rejects(create(emulator), 'reset: no answer at all')

  const midBody = await create(emulator)
  t.equal(midBody.status, 200)
  t.ok(Number(midBody.headers.get('content-length')) > 0)
  await t.rejects(midBody.text(), 'reset-mid-body: the body breaks off')

  const started = Date.now()
  await t.rejects(create(emulator, { signal: AbortSignal.timeout(150) }), 'hang: no answer until the client gives up')
  t.ok(Date.now() - started >= 140)
  t.same(emulator.calls().map(call => [call.fault, call.status]), [['reset', null], ['reset-mid-body', 200], ['hang', null]])
})

t.test('faults: bad 200 bodies', async t => {
  const emulator = await start(t)
  emulator.setFaults({ sequence: [{ kind: 'malformed-json' }, { kind: 'wrong-json' }, { kind: 'oversized' }] })

  const malformed = await create(emulator)
  t.equal(malformed.status, 200)
  await t.rejects(malformed.json())

  const wrong = await json(await create(emulator))
  t.not(typeof wrong.token, 'string')

  const oversized = await create(emulator)
  const text = await oversized.text()
  t.ok(text.length >= 100 * 1024)
  t.type((JSON.parse(text) as Record<string, unknown>).token, 'string')
})

t.test('faults: trickle sends a valid body slowly', async t => {
  const emulator = await start(t)
  emulator.setFaults({ sequence: [{ kind: 'trickle', bytesPerSecond: 200 }, { kind: 'trickle' }] })
  const started = Date.now()
  const response = await create(emulator)
  const text = await response.text()
  const elapsed = Date.now() - started
  t.type((JSON.parse(text) as Record<string, unknown>).token, 'string')
  t.ok(elapsed >= (text.length / 200) * 1000 * 0.7, `took ${elapsed} ms for ${text.length} bytes`)

  const slow = await create(emulator)
  t.equal(slow.status, 200, 'headers arrive at once')
  const reader = slow.body!.getReader()
  const first = await reader.read()
  t.equal(first.value?.length, 1, 'one byte per second by default')
  emulator.reset()
  await t.rejects(reader.read(), 'reset cuts the trickle')
})

t.test('faults: redirect and delay', async t => {
  const emulator = await start(t)
  emulator.setFaults({
    sequence: [{ kind: 'redirect', location: 'https://example.invalid/login' }, { kind: 'redirect' }, { kind: 'delay', ms: 150 }]
  })
  const redirected = await create(emulator, { redirect: 'manual' })
  t.equal(redirected.status, 302)
  t.equal(redirected.headers.get('location'), 'https://example.invalid/login')
  const local = await create(emulator, { redirect: 'manual' })
  t.equal(local.headers.get('location'), LEGACY)

  const started = Date.now()
  const delayed = await create(emulator)
  t.ok(Date.now() - started >= 140)
  t.equal(delayed.status, 200, 'a delay then the normal answer')
  t.equal(emulator.calls()[2]!.fault, 'delay:150')
})

t.test('faults: random rate, plan latency and the control endpoint', async t => {
  const emulator = await start(t)
  const always = await control(emulator, '/faults', { random: { rate: 1, faults: [{ kind: 'status', status: 500 }] } })
  t.equal(always.status, 204)
  for (let i = 0; i < 3; i += 1) t.equal((await create(emulator)).status, 500)

  emulator.setFaults({ sequence: [{ kind: 'wrong-json' }], random: { rate: 0, faults: [{ kind: 'reset' }] }, latencyMs: 100 })
  const started = Date.now()
  t.same(await (await create(emulator)).json(), { token: 42 }, 'sequence first')
  t.equal((await create(emulator)).status, 200, 'rate 0 never faults')
  t.ok(Date.now() - started >= 190, 'plan latency applies to every call')

  for (const junk of ['not json', [], { sequence: [{ kind: 'explode' }] }, { random: { rate: 2, faults: [] } },
    { sequence: [{ kind: 'status', status: 99 }] }, { sequence: [{ kind: 'delay' }] }, { extra: true },
    { sequence: [{ kind: 'status', status: 500, headers: { 'bad header': 'x' } }] }]) {
    const response = await control(emulator, '/faults', junk)
    t.equal(response.status, 400, JSON.stringify(junk))
    t.match(await json(response), { error: 'bad_request', message: String })
  }
  t.throws(() => emulator.setFaults({ sequence: [{ kind: 'delay', ms: -1 }] }))
})

t.test('latencyMs delays every API answer but not the control API', async t => {
  const emulator = await start(t, { latencyMs: 120 })
  let started = Date.now()
  t.equal((await create(emulator)).status, 200)
  t.ok(Date.now() - started >= 110)
  started = Date.now()
  t.equal((await control(emulator, '/health')).status, 200)
  t.ok(Date.now() - started < 110)
})

t.test('many delayed answers in flight at once raise no MaxListenersExceededWarning', async t => {
  const emulator = await start(t, { latencyMs: 50 })
  const warnings: string[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning.name) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  const statuses = await Promise.all(Array.from({ length: 25 }, async () => (await create(emulator)).status))
  t.same(statuses, Array(25).fill(200))
  // Warnings are emitted on the next tick.
  await sleep(20)
  t.same(warnings.filter(name => name === 'MaxListenersExceededWarning'), [])
})

t.test('configure and POST /__emulator/config change behaviour at runtime', async t => {
  const emulator = await start(t)
  const configured = await control(emulator, '/config', { accessTokens: ['other'], rateLimit: { max: 1, intervalMs: 10_000 } })
  t.equal(configured.status, 200)
  t.match(await json(configured), { accessTokens: ['other'], rateLimit: { max: 1 }, port: emulator.port })
  t.equal((await create(emulator)).status, 401)
  t.equal((await create(emulator, { token: 'other' })).status, 200)
  t.equal((await create(emulator, { token: 'other' })).status, 429)

  for (const junk of [{ tierAllowed: 'no' }, { rateLimit: { max: 1 } }, { port: 1 }, { surprise: 1 }, [1], 'nope']) {
    t.equal((await control(emulator, '/config', junk)).status, 400, JSON.stringify(junk))
  }
  t.throws(() => emulator.configure({ latencyMs: -5 }))
})

t.test('reset clears everything and restores the creation options', async t => {
  const emulator = await start(t, { rateLimit: { max: 2, intervalMs: 60_000 } })
  const { token } = await json(await create(emulator))
  await create(emulator)
  emulator.configure({ tierAllowed: false })
  emulator.setFaults({ sequence: [{ kind: 'status', status: 500 }] })

  t.equal((await control(emulator, '/reset', {})).status, 204)
  t.same(emulator.calls(), [])
  t.equal(emulator.issued(token as string), undefined)
  t.same(emulator.stats(), { calls: 0, accepted: 0, rejected429: 0, maxInWindow: 0 })
  const after = await create(emulator)
  t.equal(after.status, 200, 'no fault, tier restored, window emptied')
  t.equal(after.headers.get('x-hubspot-ratelimit-remaining'), '1')
})

t.test('control API: health, unknown paths, wrong methods, no recording', async t => {
  const emulator = await start(t)
  t.same(await (await control(emulator, '/health')).json(), { status: 'ok' })
  t.equal((await control(emulator, '/nothing')).status, 404)
  t.equal((await control(emulator, '/calls', {})).status, 405)
  t.equal((await control(emulator, '/reset')).status, 405)
  const stats = await control(emulator, '/stats')
  t.equal(stats.headers.get('x-hubspot-ratelimit-max'), null, 'never rate limited')
  t.same(emulator.calls(), [])
})

t.test('close() does not wait for hanging or trickling requests', async t => {
  const emulator = await createHubSpotEmulator()
  emulator.setFaults({ sequence: [{ kind: 'hang' }, { kind: 'trickle' }, { kind: 'delay', ms: 60_000 }] })
  const hanging = t.rejects(create(emulator))
  const trickling = await create(emulator)
  const cutShort = t.rejects(trickling.text())
  const delayed = t.rejects(create(emulator))
  await sleep(50)
  const started = Date.now()
  await emulator.close()
  await emulator.close()
  t.ok(Date.now() - started < 1000, 'closed promptly')
  await Promise.all([hanging, cutShort, delayed])
})
