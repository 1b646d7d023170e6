import t from 'tap'
import { connectRedis } from '../../src/redis/connection.js'
import { createRedisBudget } from '../../src/hubspot/redis-budget.js'
import { noServiceEvents } from '../../src/events.js'
import { baseEnv, bearer, signSession, startEmulatorProcess, startService, type HttpAnswer, type RunningService, until } from '../helper.js'
import { redisScope, redisSkipReason, silentLog } from '../redis-helper.js'
import { sharedRedisThroughProxy } from '../tcp-proxy.js'

/**
 * The outbound budget around a Redis blip, through a TCP proxy in front of Redis: HubSpot's window must
 * hold whatever Redis does. The emulator runs in its own process with HubSpot's rolling limit scaled
 * to 20 per 3 s (equal to the service's budget), so every call that would overfill a window comes
 * back as a 429 it counts.
 */

const skip = await redisSkipReason()
t.setTimeout(120_000)

const LIMIT = 20
/** Long enough that the calls made right after the blip land in the window the first ones filled. */
const WINDOW = '3s'

t.test('a Redis blip right after the shared window filled up: HubSpot never answers 429, during the blip or after it', { skip }, async t => {
  const scope = redisScope(t)
  const { proxy, url: viaProxy } = await sharedRedisThroughProxy(t)
  const emulator = await startEmulatorProcess(t, ['--rate-limit', `${LIMIT}/${WINDOW}`])
  const env = baseEnv(emulator as never, {
    REDIS_URL: viaProxy,
    HUBSPOT_RATE_LIMIT: `${LIMIT}/${WINDOW}`,
    HUBSPOT_RATE_LIMIT_REPLICAS: '2',
    // A 429 is answered as it comes, so the emulator's count is the service's.
    HUBSPOT_MAX_RETRIES: '0',
    RATE_LIMIT_MAX: '1000000',
    MAX_EVENT_LOOP_DELAY_MS: '0'
  })
  const services = await Promise.all([0, 1].map(() => startService(t, env, { redisKeyPrefix: scope.prefix })))
  const redisCheck = async (service: RunningService): Promise<unknown> => (((await service.get('/readyz')).json().checks ?? {}) as Record<string, unknown>).redis
  const bothSay = async (check: string): Promise<boolean> => (await Promise.all(services.map(redisCheck))).every(seen => seen === check)
  await until('both replicas share Redis', () => bothSay('ok'))

  let next = 0
  const statuses = new Map<string, number>()
  /** `count` new people at once, spread over both replicas. */
  async function burst (phase: string, count: number): Promise<HttpAnswer[]> {
    const answers = await Promise.all(Array.from({ length: count }, (_, i) => {
      const n = next++
      return services[i % 2]!.get('/chat-token', bearer(signSession({ sub: `user-${n}`, email: `user.${n}@example.com` })))
    }))
    for (const answer of answers) statuses.set(`${phase} ${answer.status}`, (statuses.get(`${phase} ${answer.status}`) ?? 0) + 1)
    return answers
  }

  const filling = await burst('fill', LIMIT)
  // A caller that sends late on a busy machine may lose its slot and be refused: most are served.
  t.ok(filling.filter(answer => answer.status === 200).length > LIMIT / 2, 'a window of new people is served')
  // Redis goes away while HubSpot's window is (about) full.
  proxy.setMode({ kind: 'closed' })
  await burst('blip', LIMIT)
  await until('the replicas serve new people again from their own budgets', async () => (await burst('blip', 4)).some(answer => answer.status === 200), 20_000)
  // Keep each replica's fallback busy for a while, so that Redis comes back with calls it has not seen.
  for (let i = 0; i < 5; i++) await burst('blip', 8)
  proxy.setMode({ kind: 'pass' })
  await until('both replicas share Redis again', () => bothSay('ok'), 20_000)
  for (let i = 0; i < 5; i++) await burst('after', LIMIT)

  const stats = await emulator.stats()
  t.comment(`answers by phase: ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`)
  t.comment(`emulator: ${stats.calls} calls, ${stats.rejected429} answered 429, at most ${stats.maxInWindow} in one window`)
  t.equal(stats.rejected429, 0, 'HubSpot never answered 429')
  t.ok(stats.maxInWindow <= LIMIT, `HubSpot never saw more than the budget in one window (${stats.maxInWindow})`)
  for (const [key] of statuses) t.match(key, /^\w+ (200|503)$/, `${key}: served, or refused with 503 while the budget is spent`)
})

t.test('what a replica did while Redis was away reaches the shared window when it is back: its calls and a 429 pause', { skip }, async t => {
  const scope = redisScope(t)
  const { proxy, url: viaProxy } = await sharedRedisThroughProxy(t)
  const link = await connectRedis({ url: viaProxy, keyPrefix: scope.prefix, log: silentLog, events: noServiceEvents, clock: { now: Date.now } })
  t.teardown(() => link.close())
  await link.waitUntilUp(2000)
  const budget = createRedisBudget({ link, budget: { max: 10, windowMs: 10_000 }, replicas: 2, clock: { now: Date.now } })
  t.match(await budget.reserve(0), { granted: true })
  t.equal(await scope.redis.zcard(`${scope.prefix}budget`), 1)

  proxy.setMode({ kind: 'closed' })
  await until('the link sees Redis gone', () => !link.isUp())
  // The shared window held one call when last seen: four of this replica's five remain.
  const soon: boolean[] = []
  for (let i = 0; i < 5; i++) soon.push((await budget.reserve(60_000)).waitMs < 5000)
  t.same(soon, [true, true, true, true, false], 'the fallback counts the shared call it saw: the fifth waits for the window')
  await budget.pause(8000)
  t.equal(await scope.redis.pttl(`${scope.prefix}backoff`), -2, 'the pause could only be kept locally')

  proxy.setMode({ kind: 'pass' })
  await until('the calls and the pause made without Redis reach it', async () =>
    await scope.redis.zcard(`${scope.prefix}budget`) === 6 && await scope.redis.pttl(`${scope.prefix}backoff`) > 5000)
  t.pass('five calls made or reserved without Redis joined the shared window, and the pause is shared')
})
