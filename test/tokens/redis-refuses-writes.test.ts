import { Redis } from 'ioredis'
import t from 'tap'
import type { Env } from '../../src/config/types.js'
import { createServiceMetrics } from '../../src/metrics/service-metrics.js'
import { createCacheCrypto } from '../../src/tokens/cache-crypto.js'
import { ACCESS_TOKEN, baseEnv, bearer, captureLogs, manualClock, signSession, startEmulator, startService, until, type RunningService } from '../helper.js'
import { redisSkipReason, startRedisServer } from '../redis-helper.js'

/**
 * Redis that answers reads but refuses writes: a read-only replica after a failover (READONLY), an
 * ACL user that may not write (NOPERM), a full Redis under noeviction (OOM). The link stays up (no
 * flapping, no emptied per-process cache), each identity costs one HubSpot call, and readiness says why.
 */

const skip = await redisSkipReason()
t.setTimeout(120_000)

function env (emulator: { url: string }, redisUrl: string, overrides: Env = {}): Env {
  return baseEnv(emulator as never, {
    REDIS_URL: redisUrl,
    HUBSPOT_RATE_LIMIT: '100000/1s',
    RATE_LIMIT_MAX: '1000000',
    TOKEN_MINT_LIMIT: '1000000/1s',
    MAX_EVENT_LOOP_DELAY_MS: '0',
    LOG_LEVEL: 'info',
    ...overrides
  })
}

const session = (email: string): Record<string, string> => bearer(signSession({ sub: email, email }))
const logged = (logs: ReturnType<typeof captureLogs>, prefix: string): number =>
  logs.lines().filter(line => typeof line.msg === 'string' && line.msg.startsWith(prefix)).length

async function readiness (service: RunningService): Promise<{ status: number; redis: unknown; reason: unknown }> {
  const ready = await service.get('/readyz')
  const body = ready.json() as { checks: Record<string, unknown>; reasons?: Record<string, unknown> }
  return { status: ready.status, redis: body.checks.redis, reason: body.reasons?.redis }
}

/** A full Redis under noeviction: reads answer (empty), every write is refused with OOM. */
async function fullRedis (t: Parameters<typeof startRedisServer>[0]): Promise<{ url: string; admin: Redis }> {
  const redis = await startRedisServer(t, { args: ['--maxmemory', String(4 * 1024 * 1024), '--maxmemory-policy', 'noeviction'] })
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  const value = 'x'.repeat(1024)
  for (let batch = 0; ; batch++) {
    const pipeline = admin.pipeline()
    for (let i = 0; i < 100; i++) pipeline.set(`filler:${batch}:${i}`, value)
    if ((await pipeline.exec())?.some(([error]) => error !== null)) break
  }
  return { url: redis.url, admin }
}

const refusals: Array<[string, (t: Parameters<typeof startRedisServer>[0]) => Promise<string>]> = [
  ['readonly', async t => {
    const primary = await startRedisServer(t)
    const replica = await startRedisServer(t, { args: ['--replicaof', '127.0.0.1', new URL(primary.url).port] })
    return replica.url
  }],
  ['noperm', async t => {
    const redis = await startRedisServer(t)
    const admin = new Redis(redis.url)
    t.teardown(() => admin.disconnect())
    await admin.call('ACL', 'SETUSER', 'reader', 'on', '>reader-password', '~*', '&*', '+@all', '-@write')
    const url = new URL(redis.url)
    url.username = 'reader'
    url.password = 'reader-password'
    return url.href
  }],
  ['oom', async t => (await fullRedis(t)).url]
]

for (const [reason, start] of refusals) {
  t.test(`Redis refusing writes (${reason}): the link stays up, one HubSpot call per identity, readiness says why`, { skip }, async t => {
    const redisUrl = await start(t)
    const emulator = await startEmulator(t, { rateLimit: { max: 100_000, intervalMs: 1000 } })
    const clock = manualClock(Date.now())
    const logs = captureLogs()
    const metrics = createServiceMetrics({ redisConfigured: true, processMetrics: false })
    const service = await startService(t, env(emulator, redisUrl), { clock, logStream: logs.stream, metrics })
    const people = ['ada@example.com', 'grace@example.com', 'edsger@example.com']
    const statuses: number[] = []
    for (let round = 0; round < 6; round++) {
      const answers = await Promise.all(people.flatMap(email => [0, 1, 2, 3].map(() => service.get('/chat-token', session(email)))))
      statuses.push(...answers.map(answer => answer.status))
      // Past every pause a refused write starts: writes are tried again, and refused again.
      clock.advance(2500)
    }
    t.same([...new Set(statuses)], [200], 'every request answered 200')
    t.same(people.map(email => emulator.calls().filter(call => (call.body as { email?: string }).email === email).length), [1, 1, 1], 'one HubSpot call per identity')
    t.equal(logged(logs, 'redis unavailable'), 0, 'the link never went down')
    t.equal(logged(logs, 'redis refuses writes'), 1, 'the refusal is logged once')
    const ready = await readiness(service)
    t.equal(ready.status, 200, 'degraded never makes the replica unready')
    t.equal(ready.redis, 'degraded')
    t.match(ready.reason, new RegExp(`^${reason}: Redis refuses writes`), `the reason is given: ${String(ready.reason)}`)
    const exposed = await metrics.registry.metrics()
    t.match(exposed, new RegExp(`^chat_token_redis_degraded\\{reason="${reason}"\\} 1$`, 'm'))
    t.match(exposed, /^chat_token_redis_up 1$/m)
  })
}

t.test('while Redis refuses writes (OOM), a logout through one replica still reaches the tokens the other keeps in memory', { skip }, async t => {
  const { url } = await fullRedis(t)
  const emulator = await startEmulator(t, { rateLimit: { max: 100_000, intervalMs: 1000 } })
  const [a, b] = await Promise.all([0, 1].map(() => startService(t, env(emulator, url, { LOG_LEVEL: 'silent' }))))
  const ada = session('ada@example.com')
  const kept = (await a!.get('/chat-token', ada)).json().token
  t.equal((await a!.get('/chat-token', ada)).json().token, kept, 'A keeps the token in memory')
  t.match((await readiness(a!)).reason, /^oom: /)
  t.equal((await b!.send('DELETE', '/chat-token', ada)).status, 204)
  const after = await a!.get('/chat-token', ada)
  t.equal(after.status, 200)
  t.not(after.json().token, kept, 'A does not hand out the token logged out of on B')
})

t.test('once Redis takes writes again, readiness says ok and tokens are shared through Redis again', { skip }, async t => {
  const { url, admin } = await fullRedis(t)
  const emulator = await startEmulator(t, { rateLimit: { max: 100_000, intervalMs: 1000 } })
  const logs = captureLogs()
  const service = await startService(t, env(emulator, url), { logStream: logs.stream })
  t.equal((await service.get('/chat-token', session('ada@example.com'))).status, 200)
  t.match((await readiness(service)).reason, /^oom: /)
  await admin.config('SET', 'maxmemory', '0')
  // No traffic needed: a background write notices at the end of the pause.
  await until('readiness says Redis is ok', async () => (await readiness(service)).redis === 'ok')
  t.equal(logged(logs, 'redis accepts writes again'), 1)
  const grace = 'grace@example.com'
  t.equal((await service.get('/chat-token', session(grace))).status, 200)
  t.equal(await admin.exists(`ct:v1:tok:${createCacheCrypto(ACCESS_TOKEN).emailHash(grace)}`), 1, 'the token is in Redis again')
})
