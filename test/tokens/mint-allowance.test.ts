import t from 'tap'
import type { Env } from '../../src/config/types.js'
import { baseEnv, bearer, build, manualClock, signSession, startEmulator, type BuiltService } from '../helper.js'
import { SHARED_REDIS_URL, redisScope, redisSkipReason } from '../redis-helper.js'

/** TOKEN_MINT_LIMIT: how many new tokens one person may cost, however often they log out and in. */

const skip = await redisSkipReason()
const HOUR_MS = 60 * 60 * 1000
const roomy = { rateLimit: { max: 10_000, intervalMs: 1000 } }

function env (emulator: { url: string }, overrides: Env = {}): Env {
  // Five an hour, stated here rather than taken from the default, so the figures below follow from it.
  return baseEnv(emulator as never, { HUBSPOT_RATE_LIMIT: '10000/1s', RATE_LIMIT_MAX: '1000', TOKEN_MINT_LIMIT: '5/1h', ...overrides })
}

/** Logs out and in `turns` times, returning each GET's status. */
async function logoutLoop (services: BuiltService[], headers: Record<string, string>, turns: number): Promise<number[]> {
  const statuses: number[] = []
  for (let i = 0; i < turns; i++) {
    const service = services[i % services.length]!
    const deleted = await service.send('DELETE', '/chat-token', headers)
    if (deleted.status !== 204) throw new Error(`DELETE answered ${deleted.status}`)
    statuses.push((await service.get('/chat-token', headers)).status)
  }
  return statuses
}

t.test('a DELETE + GET loop mints 5 tokens an hour for one person, then gets 429 rate_limited until the oldest is an hour old', async t => {
  const emulator = await startEmulator(t, roomy)
  const clock = manualClock(Date.now())
  const service = await build(t, env(emulator), { clock })
  const ada = bearer(signSession({ sub: 'user-1', email: 'ada@example.com' }))
  t.same(await logoutLoop([service], ada, 5), [200, 200, 200, 200, 200])
  clock.advance(10 * 60 * 1000)
  await service.send('DELETE', '/chat-token', ada)
  const refused = await service.get('/chat-token', ada)
  t.equal(refused.status, 429)
  t.match(refused.json(), { code: 'rate_limited', status: 429 })
  t.equal(Number(refused.headers['retry-after']), 50 * 60, 'Retry-After: until the first of the five is an hour old')
  t.equal(emulator.calls().length, 5, 'HubSpot saw five calls, not six')
  t.equal((await service.get('/chat-token', bearer(signSession({ sub: 'user-2', email: 'bob@example.com' })))).status, 200, 'another person is not affected')
  clock.advance(50 * 60 * 1000)
  t.equal((await service.get('/chat-token', ada)).status, 200, 'an hour after the first mint, one more')
  t.equal((await service.get('/chat-token', ada)).status, 200, 'and a cached token is served without counting')
  t.equal(emulator.calls().length, 7)
})

t.test('cache hits, joined requests and failed mints do not count', async t => {
  const emulator = await startEmulator(t, { ...roomy, latencyMs: 50 })
  const service = await build(t, env(emulator, { TOKEN_MINT_LIMIT: '2/1h', HUBSPOT_MAX_RETRIES: '0' }))
  const ada = bearer(signSession({ sub: 'user-1', email: 'ada@example.com' }))
  const together = await Promise.all(Array.from({ length: 10 }, () => service.get('/chat-token', ada)))
  t.ok(together.every(answer => answer.status === 200), 'ten requests at once share one mint')
  for (let i = 0; i < 10; i++) t.equal((await service.get('/chat-token', ada)).status, 200, 'cache hit')
  emulator.setFaults({ sequence: [{ kind: 'status', status: 500 }, { kind: 'status', status: 500 }] })
  await service.send('DELETE', '/chat-token', ada)
  t.equal((await service.get('/chat-token', ada)).status, 503, 'a mint HubSpot failed')
  t.equal((await service.get('/chat-token', ada)).status, 503, 'and another')
  t.equal((await service.get('/chat-token', ada)).status, 200, 'gave their counts back: the second token of two is still allowed')
  await service.send('DELETE', '/chat-token', ada)
  t.equal((await service.get('/chat-token', ada)).status, 429, 'the third is not')
})

t.test('a changed name mints again, within the same allowance', async t => {
  const emulator = await startEmulator(t, roomy)
  const service = await build(t, env(emulator, { TOKEN_MINT_LIMIT: '2/1h' }))
  const named = (name: string): Record<string, string> => bearer(signSession({ sub: 'user-1', email: 'ada@example.com', given_name: name }))
  t.equal((await service.get('/chat-token', named('Ada'))).status, 200)
  t.equal((await service.get('/chat-token', named('Augusta'))).status, 200)
  t.equal((await service.get('/chat-token', named('Ada'))).status, 429, 'counted per person, not per name')
})

t.test('with Redis the allowance is the fleet\'s: a loop across two replicas still gets 5 an hour', { skip }, async t => {
  const scope = redisScope(t)
  const emulator = await startEmulator(t, roomy)
  const clock = manualClock(Date.now())
  const services = await Promise.all([0, 1].map(() => build(t, env(emulator, { REDIS_URL: SHARED_REDIS_URL }), { redisKeyPrefix: scope.prefix, clock })))
  const ada = bearer(signSession({ sub: 'user-1', email: 'ada@example.com' }))
  t.same(await logoutLoop(services, ada, 7), [200, 200, 200, 200, 200, 429, 429])
  t.equal(emulator.calls().length, 5)
  const keys = await scope.keys()
  const mintKeys = keys.filter(key => key.startsWith(`${scope.prefix}mint:`))
  t.equal(mintKeys.length, 1, 'one key for the person')
  t.notMatch(mintKeys[0]!, /ada|example/, 'named by a keyed hash, not the email')
  t.ok(await scope.redis.pttl(mintKeys[0]!) <= HOUR_MS, 'and it expires within the hour')
  clock.advance(HOUR_MS)
  t.same(await logoutLoop(services, ada, 1), [200], 'an hour later, a new token')
})
