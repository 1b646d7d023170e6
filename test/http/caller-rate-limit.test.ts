import t from 'tap'
import type { Env } from '../../src/config.js'
import { baseEnv, bearer, manualClock, signSession, startEmulator, startService } from '../helper.js'

/** RATE_LIMIT_MAX per RATE_LIMIT_WINDOW_S per caller on /chat-token (memory store; Redis store in test/tokens/redis-*.test.ts). */

const roomy = { rateLimit: { max: 10_000, intervalMs: 1000 } }

function env (emulator: { url: string }, overrides: Env = {}): Env {
  return baseEnv(emulator as never, { HUBSPOT_RATE_LIMIT: '10000/1s', RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_S: '60', ...overrides })
}

t.test('the caller past its limit gets 429 rate_limited problem+json with Retry-After', async t => {
  const emulator = await startEmulator(t, roomy)
  const service = await startService(t, env(emulator))
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
  const service = await startService(t, env(emulator), { clock })
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
  const service = await startService(t, env(emulator))
  const ada = bearer(signSession({ sub: 'user-1', email: 'ada@example.com' }))
  const bob = bearer(signSession({ sub: 'user-2', email: 'bob@example.com' }))
  for (let i = 0; i < 3; i++) await service.get('/chat-token', ada)
  t.equal((await service.get('/chat-token', ada)).status, 429)
  t.equal((await service.get('/chat-token', bob)).status, 200, 'same IP, other subject: its own budget')
})

t.test('the limit runs after session verification: bad tokens are refused as such and spend nobody\'s quota', async t => {
  const emulator = await startEmulator(t, roomy)
  const service = await startService(t, env(emulator))
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

t.test('without a subject the caller is its client IP, as TRUST_PROXY says', async t => {
  const emulator = await startEmulator(t, roomy)
  const service = await startService(t, env(emulator, { TRUST_PROXY: '1' }))
  const noSubject = bearer(signSession({ email: 'ada@example.com' }))
  const from = (ip: string): Record<string, string> => ({ ...noSubject, 'x-forwarded-for': ip })
  for (let i = 0; i < 3; i++) t.equal((await service.get('/chat-token', from('203.0.113.7'))).status, 200)
  t.equal((await service.get('/chat-token', from('203.0.113.7'))).status, 429)
  t.equal((await service.get('/chat-token', from('198.51.100.9'))).status, 200, 'another client behind the same proxy')
})

t.test('/healthz and /readyz are not limited', async t => {
  const service = await startService(t, baseEnv(undefined, { RATE_LIMIT_MAX: '1' }))
  for (let i = 0; i < 5; i++) t.equal((await service.get('/healthz')).status, 200)
})
