import { Redis } from 'ioredis'
import t from 'tap'
import { Deadline } from '../../src/deadline.js'
import { until } from '../helper.js'
import { redisSkipReason, startRedisServer } from '../redis-helper.js'
import { startTcpProxy } from '../tcp-proxy.js'
import { storeReplica } from './redis-store-helper.js'

/**
 * A failover that loses the master's last writes: the old master acknowledged a lock release and a
 * logout that never reached the server taking its place (a crash before replication, or a Sentinel
 * failover while the old master still took writes). Two redis-servers stand for the two masters, a
 * proxy for the switch, and the test copies by hand what replication had carried before.
 */

const skip = await redisSkipReason()
const LOCK_TTL_MS = 60_000
const PREFIX = 'failover:'

t.test('a lock release and a logout the old master acknowledged are sent again to the master that takes its place', { skip }, async t => {
  const [oldMaster, newMaster] = await Promise.all([startRedisServer(t), startRedisServer(t)])
  const address = (url: string): { host: string; port: number } => ({ host: new URL(url).hostname, port: Number(new URL(url).port) })
  const proxy = await startTcpProxy(t, address(oldMaster.url))
  const [before, after] = [new Redis(oldMaster.url), new Redis(newMaster.url)]
  t.teardown(() => { before.disconnect(); after.disconnect() })
  const viaProxy = new URL(oldMaster.url)
  viaProxy.port = String(proxy.port)
  const { store, crypto } = await storeReplica(t, viaProxy.href, PREFIX, { lockTtlMs: LOCK_TTL_MS })
  const replicate = async (key: string): Promise<void> => {
    const [value, ttl] = await Promise.all([before.getBuffer(key), before.pttl(key)])
    if (value !== null) await after.set(key, value, 'PX', ttl)
  }
  const adaHash = crypto.emailHash('ada@example.com')
  const [lockKey, tokenKey, generationKey] = ['lock', 'tok', 'gen'].map(kind => `${PREFIX}${kind}:${adaHash}`) as [string, string, string]

  // Bob's lock: taken, replicated, released on the old master only.
  const bob = { email: 'bob@example.com', fingerprint: 'bob-fingerprint' }
  const bobLock = `${PREFIX}lock:${crypto.emailHash(bob.email)}`
  await store.mintOnce(bob, new Deadline(5000), async () => {
    await replicate(bobLock)
    return { token: 'bob-token', issuedAt: Date.now() }
  })
  await until('the old master has the release', async () => await before.exists(bobLock) === 0)
  t.equal(await after.exists(bobLock), 1, 'the new master still has the lock')

  // Ada's token: cached and replicated, then her logout reaches the old master only.
  const ada = { email: 'ada@example.com', fingerprint: 'ada-fingerprint' }
  await store.mintOnce(ada, new Deadline(5000), async () => ({ token: 'ada-token', issuedAt: Date.now() }))
  await until('the old master has given back her lock', async () => await before.exists(lockKey) === 0)
  await replicate(tokenKey)
  await store.forget(ada.email)
  t.equal(await before.exists(tokenKey), 0, 'the old master took the logout')
  t.equal(await after.exists(generationKey), 0, 'the new master never heard of it')

  // The switch: connections cut, and new ones reach the new master.
  proxy.retarget(address(newMaster.url))
  proxy.setMode({ kind: 'closed' })
  proxy.setMode({ kind: 'pass' })
  await until('the release reaches the new master', async () => await after.exists(bobLock) === 0, 10_000)
  t.pass(`long before the lock's ${LOCK_TTL_MS / 1000} s TTL`)
  await until('the logout reaches the new master', async () => await after.exists(generationKey) === 1, 10_000)
  t.equal(await after.exists(tokenKey), 0, 'and her token is gone from it')
  t.equal(await store.lookup(ada), undefined, 'so nobody is handed it')
})
