import { randomBytes } from 'node:crypto'
import type { Clock, Deadline } from '../deadline.js'
import { ServiceError } from '../errors.js'
import type { MintedToken } from '../hubspot/client.js'
import { REDIS_UNAVAILABLE, type RedisLink, type RedisUnavailable } from '../redis/connection.js'
import type { CacheCrypto } from './cache-crypto.js'
import { FillNotices, formatNotice } from './fill-notices.js'
import type { MemoryTokenStore } from './memory-token-store.js'
import { type CacheKey, type TokenStore, usableToken } from './token-cache.js'

export interface RedisTokenStoreOptions {
  link: RedisLink
  crypto: CacheCrypto
  /** Serves while Redis is unusable; emptied whenever Redis comes back (it may hold what DELETE removed elsewhere). */
  fallback: MemoryTokenStore
  ttlMs: number
  /** Outlives the holder's whole deadline, so a live holder never loses its lock. */
  lockTtlMs: number
  clock: Clock
  random?: () => number
}

/** Waiters poll this often (jittered, doubling) in case a notice is lost; holder death is seen this way too. */
const FIRST_POLL_MIN_MS = 20
const FIRST_POLL_MAX_MS = 50
const MAX_POLL_MS = 250
/** DELETEs and lock releases that could not reach Redis, replayed on reconnect; beyond this many the oldest are dropped. */
const MAX_PENDING = 10_000

const releaseLockLua = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

/**
 * The token cache shared by every replica. Keys: `<prefix>tok:<emailHash>`, values sealed by
 * CacheCrypto. One replica mints an identity at a time: it holds `<prefix>lock:<emailHash>` (SET NX PX
 * with a random owner, released by compare-and-delete), writes the cache, then announces on
 * `<prefix>filled`; the others wait for that notice (or poll) and read the cache. When Redis fails, each
 * operation falls back to the per-process store instead of failing the request.
 */
export function createRedisTokenStore (options: RedisTokenStoreOptions): TokenStore {
  const { link, crypto, fallback, ttlMs, lockTtlMs, clock } = options
  const random = options.random ?? Math.random
  const tokenKey = (hash: string): string => `${link.keyPrefix}tok:${hash}`
  const lockKey = (hash: string): string => `${link.keyPrefix}lock:${hash}`
  const filledChannel = `${link.keyPrefix}filled`
  const releaseLock = link.defineScript('chatTokenReleaseLock', 1, releaseLockLua)
  const notices = new FillNotices()
  const pendingForgets = new Set<string>()
  /**
   * Locks this process may hold but could not release (owner → hash): waiters would sit out their TTL.
   * Keyed by owner: two timed-out SETs for one identity must not replace each other, as only one of
   * them may be the lock that is really there.
   */
  const pendingReleases = new Map<string, string>()

  link.subscribe(filledChannel, message => notices.deliver(message))
  link.onUp(() => {
    fallback.clear()
    void replayForgets()
    for (const [owner, hash] of pendingReleases) void release(hash, owner)
  })

  async function release (hash: string, owner: string): Promise<void> {
    pendingReleases.delete(owner)
    const released = await link.run(() => releaseLock([lockKey(hash)], [owner]))
    if (released !== REDIS_UNAVAILABLE) return
    if (pendingReleases.size >= MAX_PENDING) pendingReleases.delete(pendingReleases.keys().next().value!)
    pendingReleases.set(owner, hash)
  }

  async function replayForgets (): Promise<void> {
    const hashes = [...pendingForgets]
    if (hashes.length === 0) return
    pendingForgets.clear()
    const done = await link.run(redis => redis.del(...hashes.map(tokenKey)))
    if (done === REDIS_UNAVAILABLE) for (const hash of hashes) pendingForgets.add(hash)
  }

  async function read (key: CacheKey, hash: string): Promise<MintedToken | undefined | RedisUnavailable> {
    const redisKey = tokenKey(hash)
    const sealed = await link.run(redis => redis.getBuffer(redisKey))
    if (sealed === REDIS_UNAVAILABLE || sealed === null) return sealed ?? undefined
    return usableToken(crypto.open(redisKey, sealed), key, ttlMs, clock)
  }

  async function write (key: CacheKey, hash: string, minted: MintedToken): Promise<void> {
    const redisKey = tokenKey(hash)
    const lifeMs = ttlMs - (clock.now() - minted.issuedAt)
    if (lifeMs <= 0) return
    const sealed = crypto.seal(redisKey, { ...minted, fingerprint: key.fingerprint })
    const stored = await link.run(redis => redis.set(redisKey, sealed, 'PX', Math.ceil(lifeMs)))
    if (stored === REDIS_UNAVAILABLE) fallback.remember(key, minted)
  }

  async function holdAndMint (key: CacheKey, hash: string, owner: string, mint: () => Promise<MintedToken>): Promise<MintedToken> {
    let failure: unknown
    try {
      // Someone may have filled it between our lookup and taking the lock.
      const found = await read(key, hash)
      if (found !== undefined && found !== REDIS_UNAVAILABLE) return found
      const minted = await mint()
      await write(key, hash, minted)
      return minted
    } catch (error) {
      failure = error
      throw error
    } finally {
      // Announce before releasing (one connection keeps the order), so a polling waiter never finds the
      // lock free before the answer exists. Neither needs to delay this request's answer.
      void link.run(redis => redis.publish(filledChannel, formatNotice(hash, failure)))
      void release(hash, owner)
    }
  }

  async function fill (key: CacheKey, deadline: Deadline, mint: () => Promise<MintedToken>): Promise<MintedToken> {
    const hash = crypto.emailHash(key.email)
    let pollMs = FIRST_POLL_MIN_MS + random() * (FIRST_POLL_MAX_MS - FIRST_POLL_MIN_MS)
    for (;;) {
      const waiting = notices.wait(hash, Math.min(pollMs, Math.max(1, deadline.remainingMs())))
      const owner = randomBytes(16).toString('base64url')
      let sent = false
      const taken = await link.run(redis => {
        sent = true
        return redis.set(lockKey(hash), owner, 'PX', lockTtlMs, 'NX')
      })
      if (taken === REDIS_UNAVAILABLE) {
        waiting.cancel()
        // The SET may have reached Redis after we stopped waiting for it: release it once Redis is back.
        // Only if it was sent: while Redis is suspended nothing leaves, and there is nothing to release.
        if (sent && pendingReleases.size < MAX_PENDING) pendingReleases.set(owner, hash)
        return fallback.fill(key, deadline, mint)
      }
      if (taken === 'OK') {
        waiting.cancel()
        return holdAndMint(key, hash, owner, mint)
      }
      const notice = await waiting.notice
      if (notice?.ok === false) throw notice.error
      const found = await read(key, hash)
      if (found === REDIS_UNAVAILABLE) return fallback.fill(key, deadline, mint)
      if (found !== undefined) return found
      if (deadline.expired) {
        throw new ServiceError('upstream_timeout', 'Another request was minting this token and did not finish before the deadline')
      }
      // The next SET NX takes over if the holder died; only one waiter can win it, so there is no herd.
      pollMs = Math.min(pollMs * 2, MAX_POLL_MS)
    }
  }

  return {
    lookup: async key => {
      const found = await read(key, crypto.emailHash(key.email))
      return found === REDIS_UNAVAILABLE ? fallback.lookup(key) : found
    },
    fill,
    forget: async email => {
      await fallback.forget(email)
      const hash = crypto.emailHash(email)
      const deleted = await link.run(redis => redis.del(tokenKey(hash)))
      if (deleted !== REDIS_UNAVAILABLE) return
      if (pendingForgets.size >= MAX_PENDING) pendingForgets.delete(pendingForgets.values().next().value!)
      pendingForgets.add(hash)
    }
  }
}
