import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { baseEnv, bearer, build, signSession, startEmulator } from '../helper.js'

/** GET /chat-token end to end: the contract's shape, headers and error rows. */

const TWELVE_HOURS_MS = 12 * 60 * 60 * 1000

t.test('200: email, a genuine token, and expiresAt 12 h after HubSpot issued it', async t => {
  const emulator = await startEmulator(t)
  const service = await build(t, baseEnv(emulator))
  const answer = await service.get('/chat-token', bearer(signSession({ sub: 'u1', email: ' Ada@Example.COM ', given_name: 'Ada', family_name: 'Lovelace' })))
  t.equal(answer.status, 200)
  t.equal(answer.headers['cache-control'], 'no-store')
  t.match(answer.headers['content-type'], /^application\/json/)
  const body = answer.json()
  t.same(Object.keys(body).sort(), ['email', 'expiresAt', 'token'])
  t.equal(body.email, 'ada@example.com')
  const issued = emulator.issued(body.token as string)
  t.ok(issued, 'the emulator issued this token')
  t.equal(issued?.email, 'ada@example.com')
  t.equal(issued?.firstName, 'Ada')
  t.equal(issued?.lastName, 'Lovelace')
  const expiresAt = Date.parse(body.expiresAt as string)
  t.ok(Math.abs(expiresAt - (Date.parse(issued!.issuedAt) + TWELVE_HOURS_MS)) < 2000, 'expiresAt = issue time + 12 h')
})

t.test('identity errors: 403 email_not_verified, 422 email_missing, no HubSpot call', async t => {
  const emulator = await startEmulator(t)
  const service = await build(t, baseEnv(emulator, { REQUIRE_EMAIL_VERIFIED: 'true' }))
  const unverified = await service.get('/chat-token', bearer(signSession({ sub: 'u1', email: 'a@example.com' })))
  t.equal(unverified.status, 403)
  t.equal(unverified.json().code, 'email_not_verified')
  const falseFlag = await service.get('/chat-token', bearer(signSession({ sub: 'u1', email: 'a@example.com', email_verified: false })))
  t.equal(falseFlag.json().code, 'email_not_verified')
  const missing = await service.get('/chat-token', bearer(signSession({ sub: 'u1', email_verified: true })))
  t.equal(missing.status, 422)
  t.equal(missing.json().code, 'email_missing')
  const notEmail = await service.get('/chat-token', bearer(signSession({ sub: 'u1', email: 'eve@x.com\r\nBcc: a@b.com', email_verified: true })))
  t.equal(notEmail.json().code, 'email_missing')
  t.equal(emulator.calls().length, 0)
})

t.test('HubSpot outcomes map to 502, 503 and 504 problem+json', async t => {
  // A fresh emulator and service per outcome: the circuit breaker remembers refusals and failures.
  const outcome = async (arrange: (emulator: Awaited<ReturnType<typeof startEmulator>>) => void) => {
    const emulator = await startEmulator(t)
    const service = await build(t, baseEnv(emulator, { HUBSPOT_TIMEOUT_MS: '700', HUBSPOT_MAX_RETRIES: '1' }))
    arrange(emulator)
    return service.get('/chat-token', bearer(signSession({ sub: 'u1', email: 'a@example.com' })))
  }

  const rejected = await outcome(emulator => emulator.configure({ accessTokens: ['rotated-elsewhere'] }))
  t.equal(rejected.status, 502)
  t.equal(rejected.json().code, 'upstream_rejected')

  const unavailable = await outcome(emulator => emulator.setFaults({ sequence: [{ kind: 'status', status: 500 }, { kind: 'status', status: 500 }] }))
  t.equal(unavailable.status, 503)
  t.equal(unavailable.json().code, 'upstream_unavailable')
  t.match(unavailable.headers['retry-after'], /^\d+$/)

  const timeout = await outcome(emulator => emulator.setFaults({ sequence: [{ kind: 'hang' }] }))
  t.equal(timeout.status, 504)
  t.equal(timeout.json().code, 'upstream_timeout')
  for (const answer of [rejected, unavailable, timeout]) {
    t.match(answer.headers['content-type'], /^application\/problem\+json/)
    t.notMatch(answer.text, /at .*\.(ts|js):\d+/, 'no stack trace')
  }
})

t.test('problem+json for every error, including 404 and framework errors', async t => {
  const service = await build(t, baseEnv(undefined))
  const notFound = await service.get('/nope')
  t.equal(notFound.status, 404)
  const body = notFound.json()
  t.same(Object.keys(body).sort(), ['code', 'detail', 'requestId', 'status', 'title', 'type'])
  t.equal(body.code, 'not_found')
  t.equal(body.status, 404)
  t.equal(body.requestId, notFound.headers['x-request-id'])
  const wrongMethod = await service.send('PUT', '/chat-token')
  t.equal(wrongMethod.json().code, 'not_found')
  const junkBody = await service.send('POST', '/chat-token', { 'content-type': 'application/json' }, '{"broken"')
  t.match(junkBody.headers['content-type'], /^application\/problem\+json/)
  t.ok([400, 404].includes(junkBody.status))
})

t.test('x-request-id: a sane one is kept and echoed, anything else replaced', async t => {
  const service = await build(t, baseEnv(undefined))
  const kept = await service.get('/healthz', { 'x-request-id': 'lb-1234.abc_DEF-9' })
  t.equal(kept.headers['x-request-id'], 'lb-1234.abc_DEF-9')
  for (const bad of ['has space', 'a'.repeat(129), 'semi;colon', '']) {
    const replaced = await service.get('/healthz', { 'x-request-id': bad })
    t.not(replaced.headers['x-request-id'], bad)
    t.match(replaced.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  }
})

t.test('user directory: JWTs without email are looked up by subject', async t => {
  const emulator = await startEmulator(t)
  const seen: Array<{ url: string | undefined; authorization: string | undefined }> = []
  const directory = createServer((request, response) => {
    seen.push({ url: request.url, authorization: request.headers.authorization })
    const answers: Record<string, [number, string]> = {
      '/users/auth0%7Cu%201%3F%23': [200, JSON.stringify({ email: 'Grace@Example.com', firstName: 'Grace' })],
      '/users/bad-email': [200, JSON.stringify({ email: 'nope' })],
      '/users/broken': [200, '{"email":'],
      '/users/down': [500, '{}']
    }
    const [status, body] = answers[request.url ?? ''] ?? [404, '{}']
    if (request.url === '/users/slow') return
    response.writeHead(status, { 'content-type': 'application/json' }).end(body)
  })
  await new Promise<void>(resolve => directory.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { directory.closeAllConnections(); directory.close() })
  const base = `http://127.0.0.1:${(directory.address() as AddressInfo).port}`
  const lookupEnv = { USER_LOOKUP_URL: `${base}/users/{sub}`, USER_LOOKUP_AUTH: 'Bearer directory-secret' }
  // The default time limit for the answers that come: at the lowest CPU priority beside the rest of the
  // suite, a first lookup can take longer than a short limit.
  const service = await build(t, baseEnv(emulator, lookupEnv))

  const found = await service.get('/chat-token', bearer(signSession({ sub: 'auth0|u 1?#', family_name: 'Hopper' })))
  t.equal(found.status, 200)
  t.equal(found.json().email, 'grace@example.com')
  t.same(seen[0], { url: '/users/auth0%7Cu%201%3F%23', authorization: 'Bearer directory-secret' }, 'sub URL-encoded, auth header sent')
  t.same(emulator.calls()[0]?.body, { email: 'grace@example.com', firstName: 'Grace', lastName: 'Hopper' })

  for (const subject of ['unknown', 'bad-email', 'broken', 'down']) {
    const answer = await service.get('/chat-token', bearer(signSession({ sub: subject })))
    t.equal(answer.status, 502, subject)
    t.equal(answer.json().code, 'user_lookup_failed', subject)
  }
  // A directory that never answers, against a short limit.
  const impatient = await build(t, baseEnv(emulator, { ...lookupEnv, USER_LOOKUP_TIMEOUT_MS: '300' }))
  const slow = await impatient.get('/chat-token', bearer(signSession({ sub: 'slow' })))
  t.equal(slow.status, 502, 'slow')
  t.equal(slow.json().code, 'user_lookup_failed', 'slow')
  const withEmail = await service.get('/chat-token', bearer(signSession({ sub: 'x', email: 'direct@example.com' })))
  t.equal(withEmail.json().email, 'direct@example.com', 'an email in the JWT needs no lookup')
  t.equal(emulator.calls().length, 2)
})

t.test('user directory: a subject that could leave its own record is refused without a request', async t => {
  const emulator = await startEmulator(t)
  const seen: string[] = []
  // A directory that answers every path with an email, as a catch-all or an index page might.
  const directory = createServer((request, response) => {
    seen.push(request.url ?? '')
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ email: 'admin@example.com' }))
  })
  await new Promise<void>(resolve => directory.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { directory.closeAllConnections(); directory.close() })
  const base = `http://127.0.0.1:${(directory.address() as AddressInfo).port}`
  const service = await build(t, baseEnv(emulator, { USER_LOOKUP_URL: `${base}/v1/users/{sub}`, RATE_LIMIT_MAX: '1000' }))

  const hostile = [
    '.', '..', '%2e', '%2e%2e', '%2E%2E', '%2e.', '.%2E', '%252e%252e', '%25252e%25252e',
    '../admin', '..\\admin', 'a/../../admin', 'victim/email', 'a\\b', '%2f', '%5c', '%2F..', '..%2f..%2fadmin',
    'x'.repeat(257), 'tab\tinside', 'nul\u0000inside', '%00', '%0a', '%E0%A4%A'
  ]
  for (const subject of hostile) {
    const answer = await service.get('/chat-token', bearer(signSession({ sub: subject })))
    t.equal(answer.status, 422, `${JSON.stringify(subject)}: 422`)
    t.equal(answer.json().code, 'email_missing', `${JSON.stringify(subject)}: email_missing`)
  }
  t.same(seen, [], 'the directory was never asked')
  t.equal(emulator.calls().length, 0, 'no token was minted')

  const fine = await service.get('/chat-token', bearer(signSession({ sub: 'auth0|5f1c.9e..x' })))
  t.equal(fine.status, 200, 'dots inside a subject are fine')
  t.same(seen, ['/v1/users/auth0%7C5f1c.9e..x'])
})

t.test('DELETE /chat-token answers 204 for an authenticated caller, 401 otherwise', async t => {
  const emulator = await startEmulator(t)
  const service = await build(t, baseEnv(emulator))
  const deleted = await service.send('DELETE', '/chat-token', bearer(signSession({ sub: 'u1', email: 'a@example.com' })))
  t.equal(deleted.status, 204)
  t.equal(deleted.text, '')
  t.equal((await service.send('DELETE', '/chat-token')).json().code, 'missing_token')
})
