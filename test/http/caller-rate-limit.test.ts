import t from 'tap'
import type { Env } from '../../src/config.js'
import { baseEnv, bearer, build, manualClock, signSession, startEmulator } from '../helper.js'

/** RATE_LIMIT_MAX per RATE_LIMIT_WINDOW_S per caller on /chat-token (memory store; Redis store in test/tokens/redis-*.test.ts). */

const roomy = { rateLimit: { max: 10_000, intervalMs: 1000 } }

function env (emulator: { url: string }, overrides: Env = {}): Env {
  return baseEnv(emulator as never, { HUBSPOT_RATE_LIMIT: '10000/1s', RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_S: '60', ...overrides })
}

t.test('the caller past its limit gets 429 rate_limited problem+json with Retry-After', async t => {
  const emulator = await startEmulator(t, roomy)
  const service = await build(t, env(emulator))
  const ada = bearer(signSession({ sub: 'user-1', email: 'ada@example.com' }))
  for (let i = 0; i < 3; i++) t.equal((await service.get('/chat-token', ada)).status, 200)
  const limited = await service.get('/chat-token', ada)
  t.equal(limited.status, 429)
  t.match(limited.headers['content-type'], /^application\/problem\+json/)
  t.match(limited.json(), { status: 429, code: 'rate_limited', type: 'urn:chat-token:problem:rate_limited' })
  t.ok(typeof limited.json().requestId === 'string')
  const retryAfter = Number(limited.headers['retry-after'])
  t.ok(retryAfter > 0 && retryAfter <= 60, `Retry-After ${retryAfter}`)
  t.equal((await service.send('DELETE', '/chat-token', ada)).status, 429, 'GET and DELETE share the caller\'s budget')
})

t.test('a caller gets a fresh allowance once its window has passed (injected clock)', async t => {
  const emulator = await startEmulator(t, roomy)
  const clock = manualClock(Date.now())
  const service = await build(t, env(emulator), { clock })
  const ada = bearer(signSession({ sub: 'user-1', email: 'ada@example.com' }))
  for (let i = 0; i < 3; i++) await service.get('/chat-token', ada)
  t.equal((await service.get('/chat-token', ada)).status, 429)
  clock.advance(59_999)
  t.equal((await service.get('/chat-token', ada)).status, 429, 'still limited 1 ms before the window ends')
  clock.advance(1)
  t.equal((await service.get('/chat-token', ada)).status, 200)
})

t.test('callers are told apart by their verified subject, not their address', async t => {
  const emulator = await startEmulator(t, roomy)
  const service = await build(t, env(emulator))
  const ada = bearer(signSession({ sub: 'user-1', email: 'ada@example.com' }))
  const bob = bearer(signSession({ sub: 'user-2', email: 'bob@example.com' }))
  for (let i = 0; i < 3; i++) await service.get('/chat-token', ada)
  t.equal((await service.get('/chat-token', ada)).status, 429)
  t.equal((await service.get('/chat-token', bob)).status, 200, 'same IP, other subject: its own budget')
})

t.test('the limit runs after session verification: bad tokens are refused as such and spend nobody\'s quota', async t => {
  const emulator = await startEmulator(t, roomy)
  const service = await build(t, env(emulator))
  const forged = bearer(signSession({ sub: 'user-1', email: 'ada@example.com' }, { key: 'not-the-secret-but-long-enough-for-hs256' }))
  for (let i = 0; i < 10; i++) {
    const answer = await service.get('/chat-token', forged)
    t.equal(answer.status, 401)
    t.equal(answer.json().code, 'invalid_token')
  }
  t.equal((await service.get('/chat-token')).status, 401, 'no token: 401, not 429')
  const ada = bearer(signSession({ sub: 'user-1', email: 'ada@example.com' }))
  t.equal((await service.get('/chat-token', ada)).status, 200, 'the real user-1 still has its whole quota')
})

t.test('without a subject the caller is its verified email, never its address', async t => {
  const emulator = await startEmulator(t, roomy)
  const service = await build(t, env(emulator, { TRUST_PROXY: '1' }))
  const from = (email: string, ip: string): Record<string, string> => ({ ...bearer(signSession({ email })), 'x-forwarded-for': ip })
  // One person, spelled three ways and coming from three addresses: one caller.
  t.equal((await service.get('/chat-token', from('ada@example.com', '203.0.113.7'))).status, 200)
  t.equal((await service.get('/chat-token', from(' Ada@Example.COM', '198.51.100.9'))).status, 200)
  t.equal((await service.get('/chat-token', from('ADA@EXAMPLE.COM ', '192.0.2.44'))).status, 200)
  const limited = await service.get('/chat-token', from('ada@example.com', '192.0.2.45'))
  t.equal(limited.status, 429, 'a fourth request by the same email is limited from a new address')
  t.equal(limited.json().code, 'rate_limited')
  // Others behind the same address are other callers.
  t.equal((await service.get('/chat-token', from('bob@example.com', '203.0.113.7'))).status, 200)
  t.equal((await service.send('DELETE', '/chat-token', from('carol@example.com', '203.0.113.7'))).status, 204)
})

t.test('the email key follows EMAIL_CLAIM, read as the identity mapping reads it', async t => {
  const emulator = await startEmulator(t, roomy)
  const service = await build(t, env(emulator, { EMAIL_CLAIM: 'https://example.com/email', RATE_LIMIT_MAX: '2', TRUST_PROXY: '1' }))
  const ada = (other: string, ip: string): Record<string, string> => ({
    ...bearer(signSession({ 'https://example.com/email': 'Ada@Example.com', email: other })),
    'x-forwarded-for': ip
  })
  t.equal((await service.get('/chat-token', ada('one@example.com', '203.0.113.1'))).status, 200)
  t.equal((await service.get('/chat-token', ada('two@example.com', '203.0.113.2'))).status, 200)
  t.equal((await service.get('/chat-token', ada('three@example.com', '203.0.113.3'))).status, 429, 'counted by the configured claim, not by "email"')
})

t.test('sessions with neither a subject nor a usable email share one key and cost no one else\'s quota', async t => {
  const emulator = await startEmulator(t, roomy)
  const service = await build(t, env(emulator, { TRUST_PROXY: '1' }))
  for (let i = 0; i < 3; i++) {
    const answer = await service.get('/chat-token', { ...bearer(signSession({ email: `not-an-email-${i}` })), 'x-forwarded-for': `203.0.113.${i}` })
    t.equal(answer.status, 422)
  }
  t.equal((await service.get('/chat-token', bearer(signSession({ name: 'nobody' })))).status, 429, 'the fourth such session is limited')
  t.equal((await service.get('/chat-token', bearer(signSession({ email: 'ada@example.com' })))).status, 200, 'a person with an email is not')
})

t.test('/healthz and /readyz are not limited', async t => {
  const service = await build(t, baseEnv(undefined, { RATE_LIMIT_MAX: '1' }))
  for (let i = 0; i < 5; i++) t.equal((await service.get('/healthz')).status, 200)
})
