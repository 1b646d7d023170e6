import t from 'tap'
import { connectRedis } from '../../src/redis/connection.js'
import { slotSpacingMs } from '../../src/hubspot/outbound-budget.js'
import { createRedisBudget } from '../../src/hubspot/redis-budget.js'
import { noServiceEvents } from '../../src/events.js'
import { bearer, build, signSession, startEmulator, startService, type HttpAnswer } from '../helper.js'
import { SHARED_REDIS_URL, redisScope, redisSkipReason, silentLog } from '../redis-helper.js'
import { sharedRedisThroughProxy } from '../tcp-proxy.js'
import { redisBudgetEnv } from './redis-budget-env.js'

/** The outbound HubSpot budget shared by the replicas through Redis. */

const skip = await redisSkipReason()
// Load tests: a busy CI machine may need more than the default 60 s for the whole file.
t.setTimeout(180_000)

t.test('the script keeps a rolling window across replicas and queues callers on Redis\'s clock', { skip }, async t => {
  const scope = redisScope(t)
  const links = await Promise.all([0, 1].map(() => connectRedis({ url: SHARED_REDIS_URL, keyPrefix: scope.prefix, log: silentLog, events: noServiceEvents, clock: { now: Date.now } })))
  t.teardown(() => Promise.all(links.map(link => link.close())))
  await Promise.all(links.map(link => link.waitUntilUp(2000)))
  const [a, b] = links.map(link => createRedisBudget({ link, budget: { max: 3, windowMs: 1000 }, replicas: 2, clock: { now: Date.now } }))
  // Slots are at least the spacing apart (four 100 ms margins / 3), so a burst spreads out.
  const spacing = slotSpacingMs({ max: 3, windowMs: 1000 })
  t.equal(spacing, 400 / 3)
  const burst = [await a!.reserve(500), await b!.reserve(500), await a!.reserve(500)]
  t.ok(burst.every(reservation => reservation.granted))
  const slots = (await scope.redis.zrange(`${scope.prefix}budget`, 0, -1, 'WITHSCORES')).filter((_, i) => i % 2 === 1).map(Number)
  t.ok(Math.abs(slots[1]! - slots[0]! - spacing) < 0.01 && Math.abs(slots[2]! - slots[1]! - spacing) < 0.01, `slots spaced: ${slots.map(slot => (slot - slots[0]!).toFixed(2)).join(', ')} ms`)
  t.equal(burst[0]!.waitMs, 0)
  const refused = await b!.reserve(500)
  t.equal(refused.granted, false, 'the fourth call within the window is refused to a caller that cannot wait')
  t.ok(refused.waitMs > 1000 && refused.waitMs <= 1100, `the first slot frees after window + margin (${refused.waitMs} ms)`)
  const queued = await b!.reserve(5000)
  t.ok(queued.granted && queued.waitMs > 1000, 'a patient caller gets the slot when it frees')
  const next = await a!.reserve(5000)
  t.ok(next.granted && next.waitMs - queued.waitMs >= -5, 'and the next caller queues behind it, not beside it')
  t.equal(await scope.redis.zcard(`${scope.prefix}budget`), 5)
  t.equal(await a!.confirm(next.ticket, false), true, 'an on-time caller keeps its slot')
  t.equal(await scope.redis.zcard(`${scope.prefix}budget`), 5, 'where it was')
  t.equal(await b!.confirm(queued.ticket, true), false, 'moving a reservation to now, before its slot is due, would overfill the window')
  t.equal(await scope.redis.zcard(`${scope.prefix}budget`), 4, 'and gives the slot up')
  t.ok(await scope.redis.pttl(`${scope.prefix}budget`) > 0, 'the log expires when idle')
})

t.test('a late caller moves to now only if no window after it overfills; an on-time one keeps its slot', { skip }, async t => {
  const scope = redisScope(t)
  const link = await connectRedis({ url: SHARED_REDIS_URL, keyPrefix: scope.prefix, log: silentLog, events: noServiceEvents, clock: { now: Date.now } })
  t.teardown(() => link.close())
  await link.waitUntilUp(2000)
  const budget = createRedisBudget({ link, budget: { max: 2, windowMs: 1000 }, replicas: 1, clock: { now: Date.now } })
  const key = `${scope.prefix}budget`
  const redisNow = async (): Promise<number> => {
    const [seconds, micros] = await scope.redis.time()
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
  }
  // A reservation whose slot was 500 ms ago, and two calls reserved 300 ms from now.
  const late = await budget.reserve(5000)
  let now = await redisNow()
  await scope.redis.zadd(key, now - 500, late.ticket, now + 300, 'other-1', now + 300, 'other-2')
  t.equal(await budget.confirm(late.ticket, true), false, 'at now it would share the window ending at the later calls with both of them')
  t.equal(await scope.redis.zscore(key, late.ticket), null, 'and its reservation is dropped')

  const lateAgain = await budget.reserve(5000)
  now = await redisNow()
  await scope.redis.zrem(key, 'other-2')
  await scope.redis.zadd(key, now - 500, lateAgain.ticket)
  t.equal(await budget.confirm(lateAgain.ticket, true), true, 'with one later call there is room')
  t.ok(Number(await scope.redis.zscore(key, lateAgain.ticket)) >= now, 'and its entry moved to the moment it goes')

  const onTime = await budget.reserve(5000)
  const slot = await scope.redis.zscore(key, onTime.ticket)
  t.equal(await budget.confirm(onTime.ticket, false), true)
  t.equal(await scope.redis.zscore(key, onTime.ticket), slot, 'an on-time caller\'s entry stays at its slot')
})

t.test('Redis a round trip away that is longer than the lateness tolerance: new people are served, not held to the deadline', { skip }, async t => {
  const scope = redisScope(t)
  const { proxy, url } = await sharedRedisThroughProxy(t)
  const emulator = await startEmulator(t, { rateLimit: { max: 10_000, intervalMs: 1000 } })
  // A 1 s window: 100 ms of margin, 50 ms of it the tolerance for leaving late. Redis is 40 ms away
  // each way (80 ms a round trip, within the 150 ms a command may take): every answer of the budget
  // comes back later than the tolerance, and asking again cannot make it sooner.
  const service = await build(t, redisBudgetEnv(emulator, { REDIS_URL: url, HUBSPOT_RATE_LIMIT: '100/1s', HUBSPOT_MAX_RETRIES: '0' }), { redisKeyPrefix: scope.prefix })
  proxy.setMode({ kind: 'slow', delayMs: 40 })
  const answers: HttpAnswer[] = []
  for (let i = 0; i < 5; i++) answers.push(await service.get('/chat-token', bearer(signSession({ sub: `far-${i}`, email: `far.${i}@example.com` }))))
  proxy.setMode({ kind: 'pass' })
  t.same(answers.map(answer => answer.status), [200, 200, 200, 200, 200], answers.map(answer => answer.text).find(text => !text.includes('token')) ?? 'every one served')
  t.equal(emulator.calls().length, 5, 'one HubSpot call each')
})

t.test('a 429 seen by one replica pauses the others', { skip }, async t => {
  const scope = redisScope(t)
  const emulator = await startEmulator(t, { rateLimit: { max: 10_000, intervalMs: 1000 } })
  emulator.setFaults({ sequence: [{ kind: 'status', status: 429, headers: { 'Retry-After': '8' } }] })
  const overrides = { HUBSPOT_MAX_RETRIES: '0', HUBSPOT_RATE_LIMIT: '10000/1s' }
  const [a, b] = await Promise.all([0, 1].map(() => startService(t, redisBudgetEnv(emulator, overrides), { redisKeyPrefix: scope.prefix })))
  t.equal((await a!.get('/chat-token', bearer(signSession({ sub: 'a', email: 'a@example.com' })))).status, 503)
  const other = await b!.get('/chat-token', bearer(signSession({ sub: 'b', email: 'b@example.com' })))
  t.equal(other.status, 503)
  t.equal(other.json().code, 'upstream_unavailable')
  t.ok(Number(other.headers['retry-after']) >= 3, `Retry-After ${String(other.headers['retry-after'])}: the 8 s pause less the 1 s the next request may wait for a slot`)
  t.equal(emulator.calls().length, 1, 'the other replica did not call during the pause')
  t.ok(await scope.redis.pttl(`${scope.prefix}backoff`) > 6000)
})
