import { Redis } from 'ioredis'
import t from 'tap'
import { Deadline, systemClock } from '../../src/deadline.js'
import { noServiceEvents } from '../../src/events.js'
import { connectRedis } from '../../src/redis/connection.js'
import { createCacheCrypto } from '../../src/tokens/cache-crypto.js'
import { createMemoryTokenStore } from '../../src/tokens/memory-token-store.js'
import { PendingForgets } from '../../src/tokens/pending-forgets.js'
import { createRedisTokenStore } from '../../src/tokens/redis-token-store.js'
import { until } from '../helper.js'
import { redisSkipReason, startRedisServer } from '../redis-helper.js'

/**
 * A lock holder whose release Redis refuses as a write (here NOPERM: the ACL stops allowing DEL while it
 * mints) gives the lock back once Redis takes writes again, instead of leaving everyone who asks for
 * that person to wait out the lock's TTL.
 */

const skip = await redisSkipReason()
const LOCK_TTL_MS = 60_000
const silentLog = { info: () => {}, warn: () => {} } as never

t.test('a lock release refused as a write goes out once Redis takes writes again', { skip }, async t => {
  const server = await startRedisServer(t)
  const admin = new Redis(server.url)
  t.teardown(() => admin.disconnect())
  await admin.call('ACL', 'SETUSER', 'service', 'on', '>service-password', '~*', '&*', '+@all')
  const url = new URL(server.url)
  url.username = 'service'
  url.password = 'service-password'
  const link = await connectRedis({ url: url.href, keyPrefix: 'release:', log: silentLog, events: noServiceEvents, clock: systemClock })
  t.teardown(() => link.close())
  t.ok(await link.waitUntilUp(5000), 'connected')
  const crypto = createCacheCrypto('a-cache-key-for-this-test-only-0123456789')
  const store = createRedisTokenStore({
    link,
    crypto,
    fallback: createMemoryTokenStore({ maxEntries: 100, ttlMs: 60_000, clock: systemClock }),
    ttlMs: 60_000,
    lockTtlMs: LOCK_TTL_MS,
    pendingForgets: new PendingForgets({ file: undefined, maxAgeMs: 60_000, maxEntries: 100, clock: systemClock, onFileError: () => {} }),
    clock: systemClock
  })
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
