import t from 'tap'
import type { Env } from '../../src/config/types.js'
import { baseEnv, bearer, build, manualClock, signSession, startEmulator, startService, until } from '../helper.js'
import { freePort, redisScope, redisSkipReason, SHARED_REDIS_URL } from '../redis-helper.js'

/** RATE_LIMIT_MAX per RATE_LIMIT_WINDOW_S per caller on /chat-token, in memory and in Redis. */

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

t.test('the x-ratelimit headers say the limit, what is left and when the window ends', async t => {
  const emulator = await startEmulator(t, roomy)
  const service = await startService(t, env(emulator))
  const ada = bearer(signSession({ sub: 'user-1', email: 'ada@example.com' }))
  const first = await service.get('/chat-token', ada)
  t.match(first.headers, { 'x-ratelimit-limit': '3', 'x-ratelimit-remaining': '2', 'x-ratelimit-reset': '60' })
  await service.get('/chat-token', ada)
  t.equal((await service.get('/chat-token', ada)).headers['x-ratelimit-remaining'], '0')
  t.equal((await service.get('/chat-token', ada)).headers['x-ratelimit-remaining'], '0', 'never negative past the limit')
})

t.test('Redis mode', async t => {
  const skip = await redisSkipReason()
  if (skip !== false) {
    t.comment(`SKIPPED: ${skip}`)
    return
  }

  t.test('a warm hit is one round trip to Redis: one script counts the caller and reads the cached token', async t => {
    const emulator = await startEmulator(t, roomy)
    const scope = redisScope(t)
    const service = await startService(t, env(emulator, { REDIS_URL: SHARED_REDIS_URL, RATE_LIMIT_MAX: '1000' }), { redisKeyPrefix: scope.prefix })
    const ada = bearer(signSession({ sub: 'user-1', email: 'ada@example.com' }))
    const minted = await service.get('/chat-token', ada)
    t.equal(minted.status, 200)

    // MONITOR shows every command Redis runs; only this test's keys carry its prefix.
    const monitor = await scope.redis.monitor()
    t.teardown(() => monitor.disconnect())
    const seen: string[][] = []
    // Commands a script runs inside Redis are shown too, with "lua" as their source: not round trips.
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua' && args.some(arg => arg.startsWith(scope.prefix))) seen.push(args)
    })
    // A marker command through the same monitor tells when every earlier command has been seen.
    const marker = `${scope.prefix}marker`
    const settled = async (): Promise<void> => {
      const at = seen.length
      await scope.redis.get(marker)
      await until('the marker is monitored', () => seen.slice(at).some(args => args.includes(marker)))
    }
    await settled()
    const before = seen.length
    const HITS = 5
    for (let i = 0; i < HITS; i++) {
      const hit = await service.get('/chat-token', ada)
      t.equal(hit.status, 200)
      t.equal(hit.json().token, minted.json().token, 'served from the cache')
    }
    await settled()
    const commands = seen.slice(before).filter(args => !args.includes(marker))
    t.equal(commands.length, HITS, `one command per hit (${commands.map(args => args[0]).join(', ')})`)
    for (const args of commands) {
      t.equal(args[0]?.toLowerCase(), 'evalsha')
      t.ok(args.some(arg => arg.startsWith(`${scope.prefix}rl:`)) && args.some(arg => arg.startsWith(`${scope.prefix}tok:`)), 'the caller\'s counter and the token in the same script')
    }
  })

  t.test('the count in that same trip is the shared one: a caller limited on one replica is limited on the other', async t => {
    const emulator = await startEmulator(t, roomy)
    const scope = redisScope(t)
    const [a, b] = await Promise.all([0, 1].map(() => startService(t, env(emulator, { REDIS_URL: SHARED_REDIS_URL }), { redisKeyPrefix: scope.prefix })))
    const ada = bearer(signSession({ sub: 'user-1', email: 'ada@example.com' }))
    t.equal((await a!.get('/chat-token', ada)).status, 200, 'a miss, counted')
    t.equal((await b!.get('/chat-token', ada)).status, 200, 'a hit on the other replica, counted in the same trip')
    t.equal((await a!.get('/chat-token', ada)).headers['x-ratelimit-remaining'], '0')
    const limited = await b!.get('/chat-token', ada)
    t.equal(limited.status, 429, 'the fourth request, wherever it lands')
    t.equal(limited.json().code, 'rate_limited')
    t.notOk('token' in limited.json(), 'the token that trip read is not handed out past the limit')
  })
})

t.test('with Redis configured but unreachable, the limit still holds, counted in process memory (GET and DELETE)', async t => {
  const emulator = await startEmulator(t, roomy)
  // A port nothing listens on: every Redis command is refused at once.
  const service = await build(t, env(emulator, { REDIS_URL: `redis://127.0.0.1:${await freePort()}` }))
  const ada = bearer(signSession({ sub: 'user-1', email: 'ada@example.com' }))
  t.equal((await service.get('/chat-token', ada)).status, 200, 'served from the per-process fallback')
  t.equal((await service.get('/chat-token', ada)).status, 200)
  t.equal((await service.send('DELETE', '/chat-token', ada)).status, 204)
  const limited = await service.get('/chat-token', ada)
  t.equal(limited.status, 429, 'the fourth request is limited although Redis never answered')
  t.equal(limited.json().code, 'rate_limited')
})
