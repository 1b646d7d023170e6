import { Redis } from 'ioredis'
import t from 'tap'
import { createServiceMetrics } from '../../src/metrics/service-metrics.js'
import { baseEnv, bearer, manualClock, signSession, startEmulator, startService, until } from '../helper.js'
import { redisSkipReason, startRedisServer } from '../redis-helper.js'

/**
 * A Redis at maxmemory, under each eviction policy. With `noeviction` (Redis's default) reads work and
 * come back empty while every write fails with OOM; with the others writes go through and keys vanish.
 * Either way each identity costs at most one HubSpot call per replica, no request fails, and readiness
 * and the metrics say what is wrong.
 */

const skip = await redisSkipReason()
t.setTimeout(240_000)

const POLICIES = ['noeviction', 'allkeys-lru', 'allkeys-lfu', 'allkeys-random', 'volatile-lru', 'volatile-lfu', 'volatile-random', 'volatile-ttl']
const MAX_MEMORY_BYTES = 4 * 1024 * 1024
const PEOPLE = 5
const ROUNDS = 8
const PER_ROUND = 6

/**
 * Someone else's data: writes `bytes` of 16 kB values under new keys, or until Redis refuses. They live
 * a day, longer than the service's own keys, so every policy may evict those first (volatile-ttl does).
 * (Values this large keep the filling cheap: a few hundred commands fill Redis, not thousands.)
 */
async function fill (redis: Redis, bytes: number): Promise<number> {
  const value = 'x'.repeat(16 * 1024)
  let written = 0
  while (written < bytes) {
    const pipeline = redis.pipeline()
    for (let i = 0; i < 16; i++) pipeline.set(`filler:${filled++}`, value, 'EX', 86_400)
    const results = await pipeline.exec()
    written += 16 * value.length
    if (results?.some(([error]) => error !== null)) break
  }
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1])
}
let filled = 0

const counts: Record<string, number[]> = {}

for (const policy of POLICIES) {
  t.test(`Redis full under ${policy}: at most one HubSpot call per identity, every request answered, readiness and metrics say why`, { skip }, async t => {
    const redis = await startRedisServer(t, { args: ['--maxmemory', String(MAX_MEMORY_BYTES), '--maxmemory-policy', policy] })
    const other = new Redis(redis.url)
    t.teardown(() => other.disconnect())
    const usedBytes = await fill(other, 2 * MAX_MEMORY_BYTES)
    t.ok(usedBytes >= MAX_MEMORY_BYTES * 0.9, `Redis is full (${usedBytes} of ${MAX_MEMORY_BYTES} bytes)`)

    const emulator = await startEmulator(t, { rateLimit: { max: 100_000, intervalMs: 1000 } })
    // Time moves only between rounds, past every pause a refused write or a failed command starts.
    const clock = manualClock(Date.now())
    const metrics = createServiceMetrics({ redisConfigured: true, processMetrics: false })
    const service = await startService(t, baseEnv(emulator, {
      REDIS_URL: redis.url,
      HUBSPOT_RATE_LIMIT: '100000/1s',
      RATE_LIMIT_MAX: '1000000',
      TOKEN_MINT_LIMIT: '1000000/1s',
      MAX_EVENT_LOOP_DELAY_MS: '0'
    }), { clock, metrics })
    const sessions = Array.from({ length: PEOPLE }, (_, i) => bearer(signSession({ sub: `p${i}`, email: `person.${i}@example.com` })))
    // A replica learns that Redis evicts from INFO, read as it starts and every 5 s after. On a loaded
    // machine the first answer can come after start-up has stopped waiting for it (1 s); the one call
    // per identity holds from when the replica knows.
    // `unreachable` is degraded too, but says nothing of eviction: the reason must be one that keeps
    // tokens in the process.
    if (policy !== 'noeviction') {
      await until('the replica has seen that Redis evicts', async () => /^(evicting|oom): /.test(((await service.get('/readyz')).json() as { reasons?: Record<string, string> }).reasons?.redis ?? ''), 15_000)
    }

    const statuses: Record<number, number> = {}
    for (let round = 0; round < ROUNDS; round++) {
      const answers = await Promise.all(sessions.flatMap(session => Array.from({ length: PER_ROUND }, () => service.get('/chat-token', session))))
      for (const answer of answers) statuses[answer.status] = (statuses[answer.status] ?? 0) + 1
      // The others keep writing: a Redis that evicts turns all of its memory over between rounds.
      await fill(other, MAX_MEMORY_BYTES)
      clock.advance(2500)
    }

    const perPerson = sessions.map((_, i) => emulator.calls().filter(call => (call.body as { email?: string }).email === `person.${i}@example.com`).length)
    counts[policy] = perPerson
    t.comment(`${policy}: HubSpot calls per identity ${JSON.stringify(perPerson)} for ${ROUNDS * PER_ROUND} requests each`)
    t.same(statuses, { 200: PEOPLE * ROUNDS * PER_ROUND }, `every request answered 200 (${JSON.stringify(statuses)})`)
    t.ok(perPerson.every(calls => calls <= 1), 'at most one HubSpot call per identity')

    const ready = await service.get('/readyz')
    t.equal(ready.status, 200, 'degraded never makes the replica unready')
    const body = ready.json() as { checks: Record<string, string>; reasons?: Record<string, string> }
    t.equal(body.checks.redis, 'degraded')
    const expected = policy === 'noeviction' ? /^oom: / : /^(evicting|oom): /
    t.match(body.reasons?.redis, expected, `the reason is given: ${body.reasons?.redis}`)
    const reason = /^(\w+):/.exec(body.reasons?.redis ?? '')?.[1]
    const exposed = await metrics.registry.metrics()
    t.match(exposed, new RegExp(`^chat_token_redis_degraded\\{reason="${reason}"\\} 1$`, 'm'), 'and the metric says the same')
    t.match(exposed, /^chat_token_redis_up 1$/m, 'Redis is up all along: reads work')
  })
}

t.test('HubSpot calls per identity, by eviction policy', { skip }, async t => {
  t.comment(JSON.stringify(counts))
  t.pass()
})
