import t from 'tap'
import type { Env } from '../../src/config/types.js'
import { AccountDay } from '../../src/hubspot/account-day.js'
import { connectRedis } from '../../src/redis/connection.js'
import { createRedisDailyAllowance } from '../../src/hubspot/daily-allowance.js'
import { noServiceEvents } from '../../src/events.js'
import { ServiceError } from '../../src/errors.js'
import { baseEnv, bearer, build, manualClock, signSession, startEmulator, type BuiltService, until } from '../helper.js'
import { SHARED_REDIS_URL, redisScope, redisSkipReason, silentLog } from '../redis-helper.js'
import { sharedRedisThroughProxy } from '../tcp-proxy.js'

/**
 * HubSpot's daily limit: our own ceiling (HUBSPOT_DAILY_LIMIT) and HubSpot's DAILY 429, both lasting
 * until midnight in the account's time zone (HUBSPOT_ACCOUNT_TIME_ZONE), for every replica.
 */

const skip = await redisSkipReason()
const HOUR_S = 3600
const roomy = { rateLimit: { max: 10_000, intervalMs: 1000 } }
const dailyBody = { status: 'error', message: 'You have reached your daily limit.', errorType: 'RATE_LIMIT', correlationId: 'c-1', policyName: 'DAILY' }

function env (emulator: { url: string }, overrides: Env = {}): Env {
  return baseEnv(emulator as never, { HUBSPOT_RATE_LIMIT: '10000/1s', RATE_LIMIT_MAX: '1000', ...overrides })
}

let people = 0
const newPerson = (): Record<string, string> => {
  const n = people++
  return bearer(signSession({ sub: `person-${n}`, email: `person.${n}@example.com` }, { expiresInS: 10 * 24 * HOUR_S }))
}

t.test('HUBSPOT_DAILY_LIMIT: past the ceiling a miss answers 503 with Retry-After until midnight in the account\'s zone, without calling HubSpot', async t => {
  const emulator = await startEmulator(t, roomy)
  // 20:00 in Los Angeles, the evening before the clocks go forward.
  const clock = manualClock(Date.parse('2026-03-07T20:00:00-08:00'))
  const service = await build(t, env(emulator, { HUBSPOT_DAILY_LIMIT: '2', HUBSPOT_ACCOUNT_TIME_ZONE: 'America/Los_Angeles' }), { clock })
  t.equal((await service.get('/chat-token', newPerson())).status, 200)
  t.equal((await service.get('/chat-token', newPerson())).status, 200)
  const refused = await service.get('/chat-token', newPerson())
  t.equal(refused.status, 503)
  t.equal(refused.json().code, 'upstream_unavailable')
  t.equal(Number(refused.headers['retry-after']), 4 * HOUR_S, 'until midnight in Los Angeles')
  t.equal(emulator.calls().length, 2, 'HubSpot was not called')
  clock.set(Date.parse('2026-03-07T23:59:59-08:00'))
  t.equal(Number((await service.get('/chat-token', newPerson())).headers['retry-after']), 1)
  clock.set(Date.parse('2026-03-08T00:00:00-08:00'))
  t.equal((await service.get('/chat-token', newPerson())).status, 200, 'a new day in the account\'s zone')
  t.equal((await service.get('/chat-token', newPerson())).status, 200)
  const again = await service.get('/chat-token', newPerson())
  t.equal(again.status, 503)
  t.equal(Number(again.headers['retry-after']), 23 * HOUR_S, 'that day has 23 hours: the next reset is at 07:00 UTC')
  t.equal(emulator.calls().length, 4)
})

t.test('a DAILY 429 pauses calls until the account\'s midnight, then they resume (memory mode)', async t => {
  const emulator = await startEmulator(t, roomy)
  // 14:30 in Kolkata: midnight there is 9.5 hours away.
  const clock = manualClock(Date.parse('2026-11-26T09:00:00Z'))
  const service = await build(t, env(emulator, { HUBSPOT_ACCOUNT_TIME_ZONE: 'Asia/Kolkata' }), { clock })
  emulator.setFaults({ sequence: [{ kind: 'status', status: 429, body: dailyBody }] })
  const first = await service.get('/chat-token', newPerson())
  t.equal(first.status, 503)
  t.equal(Number(first.headers['retry-after']), 9.5 * HOUR_S)
  clock.advance(HOUR_S * 1000)
  const next = await service.get('/chat-token', newPerson())
  t.equal(next.status, 503, 'the next miss does not try HubSpot again')
  t.equal(Number(next.headers['retry-after']), 8.5 * HOUR_S)
  t.equal(emulator.calls().length, 1)
  clock.set(Date.parse('2026-11-26T18:30:00Z'))
  t.equal((await service.get('/chat-token', newPerson())).status, 200, 'at midnight in Kolkata calls resume')
})

t.test('a DAILY 429 on one replica pauses the others through Redis, until the account\'s midnight', { skip }, async t => {
  const scope = redisScope(t)
  const emulator = await startEmulator(t, roomy)
  const clock = manualClock(Date.parse('2026-11-26T09:00:00Z'))
  const overrides = { REDIS_URL: SHARED_REDIS_URL, HUBSPOT_ACCOUNT_TIME_ZONE: 'Asia/Kolkata' }
  const [a, b] = await Promise.all([0, 1].map(() => build(t, env(emulator, overrides), { redisKeyPrefix: scope.prefix, clock }))) as [BuiltService, BuiltService]
  emulator.setFaults({ sequence: [{ kind: 'status', status: 429, body: dailyBody }] })
  t.equal((await a.get('/chat-token', newPerson())).status, 503)
  const other = await b.get('/chat-token', newPerson())
  t.equal(other.status, 503)
  t.equal(other.json().code, 'upstream_unavailable')
  t.ok(Math.abs(Number(other.headers['retry-after']) - 9.5 * HOUR_S) <= 1, `the other replica says until midnight in Kolkata (${String(other.headers['retry-after'])} s)`)
  t.equal(emulator.calls().length, 1, 'and did not call HubSpot')
  const pauseMs = await scope.redis.pttl(`${scope.prefix}daily-pause`)
  t.ok(pauseMs > (9.5 * HOUR_S - 5) * 1000 && pauseMs <= 9.5 * HOUR_S * 1000, `the pause lives in Redis for 9.5 h (${pauseMs} ms)`)
})

t.test('HUBSPOT_DAILY_LIMIT is the fleet\'s: two replicas share one count per account day', { skip }, async t => {
  const scope = redisScope(t)
  const emulator = await startEmulator(t, roomy)
  // Noon UTC is already the next day in Apia (UTC+13).
  const clock = manualClock(Date.parse('2026-11-26T12:00:00Z'))
  const overrides = { REDIS_URL: SHARED_REDIS_URL, HUBSPOT_DAILY_LIMIT: '3', HUBSPOT_ACCOUNT_TIME_ZONE: 'Pacific/Apia' }
  const [a, b] = await Promise.all([0, 1].map(() => build(t, env(emulator, overrides), { redisKeyPrefix: scope.prefix, clock }))) as [BuiltService, BuiltService]
  for (const service of [a, b, a]) t.equal((await service.get('/chat-token', newPerson())).status, 200)
  const refused = await b.get('/chat-token', newPerson())
  t.equal(refused.status, 503)
  t.equal(Number(refused.headers['retry-after']), 23 * HOUR_S, 'until midnight in Apia (11:00 UTC)')
  t.equal(emulator.calls().length, 3)
  t.equal(await scope.redis.get(`${scope.prefix}daily:2026-11-27`), '3', 'counted under the account\'s date')
  t.ok(await scope.redis.pttl(`${scope.prefix}daily:2026-11-27`) > 23 * HOUR_S * 1000, 'kept past the day\'s end')
  clock.set(Date.parse('2026-11-27T11:00:00Z'))
  t.equal((await a.get('/chat-token', newPerson())).status, 200, 'a new day in Apia')
})

t.test('while Redis is away a replica keeps to its share of what was left today, and adds its count back on return', { skip }, async t => {
  const scope = redisScope(t)
  const { proxy, url: viaProxy } = await sharedRedisThroughProxy(t)
  const clock = manualClock(Date.parse('2026-11-26T09:00:00Z'))
  const link = await connectRedis({ url: viaProxy, keyPrefix: scope.prefix, log: silentLog, events: noServiceEvents, clock })
  t.teardown(() => link.close())
  await link.waitUntilUp(2000)
  const daily = createRedisDailyAllowance({ link, limit: 10, day: new AccountDay('UTC'), clock, replicas: 2 })
  const key = `${scope.prefix}daily:2026-11-26`
  await daily.take()
  await daily.take()
  t.equal(await scope.redis.get(key), '2')

  proxy.setMode({ kind: 'closed' })
  await until('the link sees Redis gone', () => !link.isUp())
  // 8 were left when Redis was last seen; this replica's share of them is 4.
  const outcomes: string[] = []
  for (let i = 0; i < 5; i++) outcomes.push(await daily.take().then(() => 'counted', (error: unknown) => error instanceof ServiceError ? error.code : 'error'))
  t.same(outcomes, ['counted', 'counted', 'counted', 'counted', 'upstream_unavailable'])
  await daily.pause(HOUR_S * 1000)

  proxy.setMode({ kind: 'pass' })
  await until('what it did meanwhile reached Redis', async () => await scope.redis.get(key) === '6' && await scope.redis.pttl(`${scope.prefix}daily-pause`) > 0)
  t.pass('the four calls made without Redis are in the shared count, and the pause is shared')
})
