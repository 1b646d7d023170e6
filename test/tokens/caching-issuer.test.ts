import t from 'tap'
import type { Env } from '../../src/config/types.js'
import { baseEnv, bearer, build, manualClock, signSession, startEmulator } from '../helper.js'

/** The caching issuer in memory mode (no REDIS_URL), end to end through the emulator. */

const roomy = { rateLimit: { max: 10_000, intervalMs: 1000 } }

function session (email: string, claims: Record<string, unknown> = {}): Record<string, string> {
  return bearer(signSession({ sub: email, email, ...claims }))
}

function env (emulator: { url: string }, overrides: Env = {}): Env {
  return baseEnv(emulator as never, { HUBSPOT_RATE_LIMIT: '10000/1s', RATE_LIMIT_MAX: '100000', ...overrides })
}

t.test('a cached token is reused, and expiresAt still says 12 h after HubSpot issued it', async t => {
  const emulator = await startEmulator(t, roomy)
  const service = await build(t, env(emulator))
  const first = await service.get('/chat-token', session('ada@example.com'))
  const second = await service.get('/chat-token', session('ada@example.com'))
  t.equal(first.status, 200)
  t.equal(second.json().token, first.json().token)
  t.equal(second.json().expiresAt, first.json().expiresAt)
  t.equal(emulator.issued(first.json().token as string)?.expiresAt.slice(0, 16), (first.json().expiresAt as string).slice(0, 16))
  t.equal(emulator.calls().length, 1)
})

t.test('a token older than TOKEN_CACHE_TTL_S is replaced (injected clock)', async t => {
  const emulator = await startEmulator(t, roomy)
  const clock = manualClock(Date.now())
  const service = await build(t, env(emulator, { TOKEN_CACHE_TTL_S: '3600' }), { clock })
  const first = (await service.get('/chat-token', session('ada@example.com'))).json()
  clock.advance(3_599_999)
  t.equal((await service.get('/chat-token', session('ada@example.com'))).json().token, first.token, 'still fresh 1 ms before the TTL')
  clock.advance(1)
  const renewed = (await service.get('/chat-token', session('ada@example.com'))).json()
  t.not(renewed.token, first.token)
  t.equal(Date.parse(renewed.expiresAt as string) - Date.parse(first.expiresAt as string), 3_600_000, 'expiresAt follows the new issue time')
  t.equal(emulator.calls().length, 2)
})

t.test('the same email with other names is another identity: minted anew', async t => {
  const emulator = await startEmulator(t, roomy)
  const service = await build(t, env(emulator))
  const ada = (await service.get('/chat-token', session('ada@example.com', { given_name: 'Ada' }))).json()
  const augusta = (await service.get('/chat-token', session('ada@example.com', { given_name: 'Augusta' }))).json()
  t.not(augusta.token, ada.token)
  t.same(emulator.calls().map(call => (call.body as { firstName?: string }).firstName), ['Ada', 'Augusta'])
  t.equal((await service.get('/chat-token', session('ada@example.com', { given_name: 'Augusta' }))).json().token, augusta.token)
  t.equal(emulator.calls().length, 2)
})

t.test('DELETE forgets the cached token; the next GET mints a new one', async t => {
  const emulator = await startEmulator(t, roomy)
  const service = await build(t, env(emulator))
  const first = (await service.get('/chat-token', session('ada@example.com', { given_name: 'Ada' }))).json()
  // Forgetting needs the email only: a session without the names forgets the same entry.
  const deleted = await service.send('DELETE', '/chat-token', session('ada@example.com'))
  t.equal(deleted.status, 204)
  const second = (await service.get('/chat-token', session('ada@example.com', { given_name: 'Ada' }))).json()
  t.not(second.token, first.token)
  t.equal(emulator.calls().length, 2)
})

t.test('concurrent requests for one identity share one HubSpot call', async t => {
  const emulator = await startEmulator(t, { ...roomy, latencyMs: 100 })
  const service = await build(t, env(emulator))
  const answers = await Promise.all(Array.from({ length: 50 }, () => service.get('/chat-token', session('ada@example.com'))))
  t.same(new Set(answers.map(answer => answer.status)), new Set([200]))
  t.equal(new Set(answers.map(answer => answer.json().token)).size, 1)
  t.equal(emulator.calls().length, 1)
})

t.test('after HubSpot refuses the access token, requests fail fast with 502 for 30 s, then one probe', async t => {
  const emulator = await startEmulator(t, roomy)
  const clock = manualClock(Date.now())
  const service = await build(t, env(emulator, { HUBSPOT_ACCESS_TOKEN: 'revoked-token' }), { clock })
  const first = await service.get('/chat-token', session('a@example.com'))
  t.equal(first.status, 502)
  t.equal(first.json().code, 'upstream_rejected')
  const fast = await service.get('/chat-token', session('b@example.com'))
  t.equal(fast.status, 502)
  t.match(fast.headers['content-type'], /^application\/problem\+json/)
  t.equal(emulator.calls().length, 1, 'the broken key was not sent again')
  clock.advance(30_000)
  t.equal((await service.get('/chat-token', session('c@example.com'))).status, 502)
  t.equal(emulator.calls().length, 2, 'one probe after 30 s')
})

t.test('after five failures in a row, 503 with Retry-After without calling, then a probe closes the circuit', async t => {
  const emulator = await startEmulator(t, roomy)
  emulator.setFaults({ sequence: Array.from({ length: 5 }, () => ({ kind: 'status' as const, status: 503 })) })
  const clock = manualClock(Date.now())
  const service = await build(t, env(emulator, { HUBSPOT_MAX_RETRIES: '0' }), { clock })
  for (let i = 0; i < 5; i++) t.equal((await service.get('/chat-token', session(`u${i}@example.com`))).status, 503)
  const open = await service.get('/chat-token', session('u5@example.com'))
  t.equal(open.status, 503)
  t.equal(open.json().code, 'upstream_unavailable')
  t.equal(open.headers['retry-after'], '5')
  t.equal(emulator.calls().length, 5)
  clock.advance(5000)
  t.equal((await service.get('/chat-token', session('u6@example.com'))).status, 200, 'the probe succeeds')
  t.equal((await service.get('/chat-token', session('u7@example.com'))).status, 200, 'closed again')
  t.equal(emulator.calls().length, 7)
})

t.test('an exhausted budget answers 503 upstream_unavailable with Retry-After at once', async t => {
  const emulator = await startEmulator(t, roomy)
  const service = await build(t, env(emulator, { HUBSPOT_RATE_LIMIT: '2/10s' }))
  t.equal((await service.get('/chat-token', session('a@example.com'))).status, 200)
  t.equal((await service.get('/chat-token', session('b@example.com'))).status, 200)
  const started = Date.now()
  const refused = await service.get('/chat-token', session('c@example.com'))
  t.ok(Date.now() - started < 500, 'refused without waiting for a slot past the deadline')
  t.equal(refused.status, 503)
  t.equal(refused.json().code, 'upstream_unavailable')
  // The second call waited out the 500 ms slot spacing (four 250 ms margins / 2), so the third asks at
  // about 0.5 s, and a slot frees at 10.25 s.
  t.equal(refused.headers['retry-after'], '9', 'when a new request would get its slot within its wait: 10.25 s - 0.5 s - the 1 s a call may wait for a slot')
  t.equal((await service.get('/chat-token', session('a@example.com'))).status, 200, 'cached tokens are still served')
  t.equal(emulator.calls().length, 2)
})

t.test('a retry takes a budget slot like any call', async t => {
  const emulator = await startEmulator(t, roomy)
  emulator.setFaults({ sequence: [{ kind: 'status', status: 503 }] })
  const service = await build(t, env(emulator, { HUBSPOT_RATE_LIMIT: '1/10s', HUBSPOT_MAX_RETRIES: '2' }))
  const answer = await service.get('/chat-token', session('a@example.com'))
  t.equal(answer.status, 503)
  t.ok(Number(answer.headers['retry-after']) >= 6, `told to come back when the budget has room (${String(answer.headers['retry-after'])})`)
  t.equal(emulator.calls().length, 1, 'the retry found no slot, so it was not sent')
})

t.test('a ten-second 429 pauses every caller, not just the one that got it', async t => {
  const emulator = await startEmulator(t, roomy)
  emulator.setFaults({ sequence: [{ kind: 'status', status: 429, headers: { 'Retry-After': '8' } }] })
  const service = await build(t, env(emulator, { HUBSPOT_MAX_RETRIES: '0' }))
  t.equal((await service.get('/chat-token', session('a@example.com'))).status, 503)
  const other = await service.get('/chat-token', session('b@example.com'))
  t.equal(other.status, 503, 'another identity waits out the pause too (it cannot within its 5 s deadline)')
  t.ok(Number(other.headers['retry-after']) >= 3, `Retry-After ${String(other.headers['retry-after'])}: the 8 s pause less the 1 s the next request may wait for a slot`)
  t.equal(emulator.calls().length, 1)
})
