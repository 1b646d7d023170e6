import { Redis } from 'ioredis'
import t from 'tap'
import { Deadline } from '../../src/deadline.js'
import { until } from '../helper.js'
import { redisSkipReason, startRedisServer } from '../redis-helper.js'
import { storeReplica } from './redis-store-helper.js'

/**
 * A lock holder whose release Redis refuses as a write (here NOPERM: the ACL stops allowing DEL while it
 * mints) gives the lock back once Redis takes writes again, instead of leaving everyone who asks for
 * that person to wait out the lock's TTL.
 */

const skip = await redisSkipReason()
const LOCK_TTL_MS = 60_000

t.test('a lock release refused as a write goes out once Redis takes writes again', { skip }, async t => {
  const server = await startRedisServer(t)
  const admin = new Redis(server.url)
  t.teardown(() => admin.disconnect())
  await admin.call('ACL', 'SETUSER', 'service', 'on', '>service-password', '~*', '&*', '+@all')
  const url = new URL(server.url)
  url.username = 'service'
  url.password = 'service-password'
  const { link, store, crypto } = await storeReplica(t, url.href, 'release:', { lockTtlMs: LOCK_TTL_MS })
  const ada = { email: 'ada@example.com', fingerprint: 'ada-fingerprint' }
  const lockKey = `release:lock:${crypto.emailHash(ada.email)}`

  const answer = await store.mintOnce(ada, new Deadline(5000), async () => {
    t.equal(await admin.exists(lockKey), 1, 'the holder has the lock')
    await admin.call('ACL', 'SETUSER', 'service', '-del')
    return { token: 'minted', issuedAt: Date.now() }
  })
  t.equal(answer.token, 'minted')
  await until('Redis refuses the release', () => link.degradation() === 'noperm')
  t.equal(await admin.exists(lockKey), 1, 'the lock is still there')

  await admin.call('ACL', 'SETUSER', 'service', '+del')
  // Within the first write probe's second or two; the lock itself would live for another minute.
  await until('the lock is given back', async () => await admin.exists(lockKey) === 0, 10_000)
  t.pass(`given back long before its ${LOCK_TTL_MS / 1000} s TTL`)
})
