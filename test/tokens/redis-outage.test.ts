import t from 'tap'
import type { Env } from '../../src/config/types.js'
import { baseEnv, bearer, captureLogs, signSession, startEmulator, startService, type RunningService, until } from '../helper.js'
import { freePort, redisSkipReason, startRedisServer } from '../redis-helper.js'

/** Redis failing never fails a request: each replica carries on from per-process state. */

// These tests start their own redis-server; the binary is what the skip checks for, via the shared one.
const skip = await redisSkipReason()
// Load tests: a busy CI machine may need more than the default 60 s for the whole file.
t.setTimeout(180_000)
const roomy = { rateLimit: { max: 100_000, intervalMs: 1000 } }

function env (emulator: { url: string }, redisUrl: string, overrides: Env = {}): Env {
  return baseEnv(emulator as never, {
    REDIS_URL: redisUrl,
    HUBSPOT_RATE_LIMIT: '100000/1s',
    RATE_LIMIT_MAX: '1000000',
    MAX_EVENT_LOOP_DELAY_MS: '0',
    LOG_LEVEL: 'info',
    ...overrides
  })
}

const messages = (logs: ReturnType<typeof captureLogs>, prefix: string): number =>
  logs.lines().filter(line => typeof line.msg === 'string' && line.msg.startsWith(prefix)).length

async function redisCheck (service: RunningService): Promise<unknown> {
  const ready = await service.get('/readyz')
  return ready.status === 200 ? ready.json().checks && (ready.json().checks as Record<string, unknown>).redis : `status ${ready.status}`
}

t.test('Redis killed and restarted under load: no request fails, each transition is logged once', { skip }, async t => {
  const redis = await startRedisServer(t)
  const emulator = await startEmulator(t, roomy)
  const logs = [captureLogs(), captureLogs()]
  const services = await Promise.all(logs.map(log => startService(t, env(emulator, redis.url), { logStream: log.stream })))
  const statuses = new Map<number, number>()
  let running = true
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; running; i++) {
      const email = `user.${(w * 7919 + i * 31) % 300}@example.com`
      const answer = await services[i % 2]!.get('/chat-token', bearer(signSession({ sub: email, email })))
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1)
    }
  }
  const load = Promise.all(Array.from({ length: 16 }, (_, w) => worker(w)))

  await until('some load has gone through', async () => (statuses.get(200) ?? 0) > 200)
  await redis.kill()
  await until('both replicas see Redis down', async () => (await Promise.all(services.map(redisCheck))).every(check => check === 'degraded'))
  const during = (statuses.get(200) ?? 0)
  await until('requests are served during the outage', async () => (statuses.get(200) ?? 0) > during + 200)
  await redis.start()
  await until('both replicas see Redis back', async () => (await Promise.all(services.map(redisCheck))).every(check => check === 'ok'))
  const after = (statuses.get(200) ?? 0)
  await until('requests are served after the outage', async () => (statuses.get(200) ?? 0) > after + 200)
  running = false
  await load

  t.same([...statuses.keys()], [200], `every answer was 200 (${statuses.get(200)} of them)`)
  for (const log of logs) {
    t.equal(messages(log, 'redis unavailable'), 1, 'down logged once, not per request')
    t.equal(messages(log, 'redis reachable'), 2, 'up logged at start and once after the restart')
  }
})

t.test('Redis unreachable from the start: tokens from memory, readiness 200 but degraded', { skip }, async t => {
  const emulator = await startEmulator(t, roomy)
  const service = await startService(t, env(emulator, `redis://127.0.0.1:${await freePort()}`, { LOG_LEVEL: 'silent' }))
  const first = await service.get('/chat-token', bearer(signSession({ sub: 'a', email: 'ada@example.com' })))
  const second = await service.get('/chat-token', bearer(signSession({ sub: 'a', email: 'ada@example.com' })))
  t.equal(first.status, 200)
  t.equal(second.json().token, first.json().token, 'cached in memory meanwhile')
  const ready = await service.get('/readyz')
  t.equal(ready.status, 200)
  t.match(ready.json(), { status: 'degraded', checks: { redis: 'degraded' } })
})

t.test('a Redis that stops answering does not make /chat-token slow; a DELETE made meanwhile is replayed', { skip }, async t => {
  const redis = await startRedisServer(t)
  const emulator = await startEmulator(t, roomy)
  const logs = captureLogs()
  const [a, b] = await Promise.all([logs, captureLogs()].map(log => startService(t, env(emulator, redis.url), { logStream: log.stream })))
  const ada = bearer(signSession({ sub: 'a', email: 'ada@example.com' }))
  const cached = (await a!.get('/chat-token', ada)).json().token
  t.equal((await b!.get('/chat-token', ada)).json().token, cached, 'shared before the freeze')

  redis.freeze()
  // A burst first: many commands time out at once, which must count as one failure, not twenty.
  const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => a!.get('/chat-token', bearer(signSession({ sub: `b${i}`, email: `b${i}@example.com` })))))
  t.same(new Set(burst.map(answer => answer.status)), new Set([200]))
  const latencies: number[] = []
  for (let i = 0; i < 20; i++) {
    const started = Date.now()
    const answer = await a!.get('/chat-token', bearer(signSession({ sub: `u${i}`, email: `u${i}@example.com` })))
    latencies.push(Date.now() - started)
    t.equal(answer.status, 200)
  }
  t.ok(Math.max(...latencies) < 1000, `no request waited for the frozen Redis (slowest ${Math.max(...latencies)} ms)`)
  t.ok(latencies.slice(1).filter(ms => ms > 150).length <= 2, `after the first timeout Redis is skipped (${latencies.join(', ')} ms)`)
  t.equal((await a!.send('DELETE', '/chat-token', ada)).status, 204, 'logout works while Redis is frozen')
  t.equal(messages(logs, 'redis unavailable'), 1, 'the outage is logged once')

  redis.thaw()
  // Without traffic the background ping notices at the end of the current suspension, which doubles
  // with each failed probe while Redis stays frozen (up to 30 s): wait that long at most, not less.
  await until('replica A sees Redis back', async () => await redisCheck(a!) === 'ok', 32_000)
  await until('the DELETE reached Redis', async () => (await b!.get('/chat-token', ada)).json().token !== cached)
  t.pass('replica B no longer hands out the forgotten token')
})
