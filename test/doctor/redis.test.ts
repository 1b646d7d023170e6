import t from 'tap'
import { Redis } from 'ioredis'
import { baseEnv, startEmulator } from '../helper.js'
import { freePort, redisSkipReason, SHARED_REDIS_URL } from '../redis-helper.js'
import { check, doctor } from './doctor-helper.js'

/** The doctor's Redis check: PING, and a key of its own written, read back and deleted. */

const skip = await redisSkipReason()

t.test('a working Redis: PING, write, read back, delete, under the service\'s prefix', { skip }, async t => {
  const emulator = await startEmulator(t)
  const report = await doctor(baseEnv(emulator, { REDIS_URL: SHARED_REDIS_URL }))
  const redis = check(report, 'redis')
  t.equal(redis.status, 'ok')
  const url = SHARED_REDIS_URL.replaceAll(/[.*+?^${}()|[\]\\/]/g, '\\$&')
  t.match(redis.summary, new RegExp(`^${url}: PING \\d+ ms; wrote, read back and deleted a key under "ct:v1:"$`))
  t.match(redis.facts.key, /^ct:v1:doctor:[0-9a-f-]{36}$/)
  const client = new Redis(SHARED_REDIS_URL)
  t.teardown(() => client.disconnect())
  t.equal(await client.exists(String(redis.facts.key)), 0, 'the doctor\'s key is gone')
  t.equal(report.exitCode, 0)
})

t.test('a Redis that cannot be reached fails, saying why and never showing the password', async t => {
  const emulator = await startEmulator(t)
  const port = await freePort()
  const closed = await doctor(baseEnv(emulator, { REDIS_URL: `redis://:redis-secret-value@127.0.0.1:${port}` }))
  const redis = check(closed, 'redis')
  t.equal(redis.status, 'fail')
  t.equal(redis.summary, `redis://127.0.0.1:${port}: nothing accepts connections at 127.0.0.1:${port} (ECONNREFUSED): check REDIS_URL's host and port`)
  t.notOk(JSON.stringify(closed).includes('redis-secret-value'))
  t.equal(closed.exitCode, 1)

  const typo = check(await doctor(baseEnv(emulator, { REDIS_URL: 'redis://redis.no-such-host.invalid:6379' })), 'redis')
  t.equal(typo.status, 'fail')
  t.match(typo.summary, /the host "redis\.no-such-host\.invalid" of REDIS_URL does not resolve/)
  t.equal(check(await doctor(baseEnv(emulator)), 'redis').status, 'skip', 'no REDIS_URL: nothing to check')
})
