import t from 'tap'
import { Deadline } from '../../src/deadline.js'
import type { MintedToken } from '../../src/hubspot/client.js'
import type { CacheKey } from '../../src/tokens/token-cache.js'
import { redisScope, redisSkipReason, SHARED_REDIS_URL } from '../redis-helper.js'
import { sharedRedisThroughProxy } from '../tcp-proxy.js'
import { storeReplica as replica } from './redis-store-helper.js'

/**
 * A Redis that stalls for a moment (300 ms round trips: over an ordinary command's 150 ms, under the
 * 1 s given to the commands a logout depends on) must not let a logout lose, even once another
 * command's timeout has made the replica leave Redis alone; and a lock holder waiting on a Redis that no
 * longer answers must still answer by its deadline. Two token stores share Redis, one of them through a
 * proxy the test slows down (or silences) at the moment that matters.
 */

const skip = await redisSkipReason()
const STALL = { kind: 'slow', delayMs: 150 } as const
const ada: CacheKey = { email: 'ada@example.com', fingerprint: 'ada-fingerprint' }

function minted (token: string): MintedToken {
  return { token, issuedAt: Date.now() }
}

t.test('a logout that meets a stalled Redis is recorded there before it returns, not kept for later', { skip }, async t => {
  const scope = redisScope(t)
  const { proxy, url } = await sharedRedisThroughProxy(t)
  const a = await replica(t, url, scope.prefix)
  const b = await replica(t, SHARED_REDIS_URL, scope.prefix)
  t.equal((await b.store.mintOnce(ada, new Deadline(5000), async () => minted('before'))).token, 'before')
  t.equal((await a.store.lookup(ada))?.token, 'before', 'A sees the shared token')

  proxy.setMode(STALL)
  // The caller limit's count of the DELETE, say, gives up on the stall first.
  t.equal(await a.store.lookup(ada), undefined, 'a lookup on A gives up on the stall')
  t.equal(a.link.isUp(), false, 'and A now leaves Redis alone')
  await a.store.forget(ada.email)
  t.equal(a.pending.size, 0, 'nothing left to replay')
  t.equal(await b.store.lookup(ada), undefined, 'the other replica no longer finds the token')
  t.equal((await scope.keys()).filter(key => key.includes('gen:')).length, 1, 'the new generation is in Redis')
})

t.test('a minter whose write meets a stalled Redis still learns of a logout made while it minted', { skip }, async t => {
  const scope = redisScope(t)
  const { proxy, url } = await sharedRedisThroughProxy(t)
  const a = await replica(t, url, scope.prefix)
  const b = await replica(t, SHARED_REDIS_URL, scope.prefix)
  const mints: string[] = []
  const answer = await a.store.mintOnce(ada, new Deadline(10_000), async () => {
    if (mints.length === 0) {
      // While HubSpot has the call: the person logs out through the other replica, and A's Redis stalls.
      await b.store.forget(ada.email)
      proxy.setMode(STALL)
      // Someone else's read on A gives up on the stall, so A leaves Redis alone for a while.
      t.equal(await a.store.lookup(ada), undefined, 'a lookup on A meanwhile finds nothing')
      t.equal(a.link.isUp(), false, 'and A now leaves Redis alone')
    }
    mints.push(`token-${mints.length + 1}`)
    return minted(mints.at(-1)!)
  })
  t.same(mints, ['token-1', 'token-2'], 'the token minted before the logout was not kept: A minted again')
  t.equal(answer.token, 'token-2', 'and answered the one minted after it')
  proxy.setMode({ kind: 'pass' })
  t.equal((await b.store.lookup(ada))?.token, 'token-2', 'the shared cache holds the new token')
})

t.test('a lock holder stops waiting for a Redis that no longer answers in time to answer by its deadline', { skip }, async t => {
  const scope = redisScope(t)
  const { proxy, url } = await sharedRedisThroughProxy(t)
  const a = await replica(t, url, scope.prefix)
  const deadline = new Deadline(1000)
  const answer = await a.store.mintOnce(ada, deadline, async () => {
    proxy.setMode({ kind: 'silent' })
    return minted('unconfirmed')
  })
  t.equal(answer.token, 'unconfirmed', 'the token is answered, though its write was never confirmed')
  t.ok(deadline.remainingMs() >= 50, `with time to spare before the deadline (${deadline.remainingMs()} ms left)`)
})
