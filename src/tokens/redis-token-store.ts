import { hash as digest, randomBytes } from 'node:crypto'
import type { Clock, Deadline } from '../deadline.js'
import { ServiceError } from '../errors.js'
import { COUNT_CALLER_LUA } from '../http/caller-limit.js'
import type { MintedToken } from '../hubspot/client.js'
import { PATIENT_COMMAND_TIMEOUT_MS, REDIS_UNAVAILABLE, type RedisLink, type RedisUnavailable } from '../redis/connection.js'
import type { CacheCrypto } from './cache-crypto.js'
import { FillNotices, formatNotice } from './fill-notices.js'
import type { MemoryTokenStore } from './memory-token-store.js'
import type { PendingForgets } from './pending-forgets.js'
import { RecentWrites } from './recent-writes.js'
import { type CacheKey, type TokenStore, usableToken } from './token-cache.js'
import { setWithinLimit } from '../bounded-map.js'

export interface RedisTokenStoreOptions {
  link: RedisLink
  crypto: CacheCrypto
  /**
   * Serves while Redis is unreachable, and keeps this process's tokens while Redis refuses writes or
   * evicts keys; emptied whenever Redis comes back from being unreachable.
   */
  fallback: MemoryTokenStore
  ttlMs: number
  /** Outlives the holder's whole deadline, so a live holder never loses its lock. */
  lockTtlMs: number
  /** Logouts that could not reach Redis, replayed when it can take them (kept in a file across restarts). */
  pendingForgets: PendingForgets
  clock: Clock
  random?: () => number
}

/** Waiters poll this often (jittered, doubling) in case a notice is lost; holder death is seen this way too. */
const FIRST_POLL_MIN_MS = 20
const FIRST_POLL_MAX_MS = 50
const MAX_POLL_MS = 250
/** Lock releases that could not reach Redis, replayed on reconnect; beyond this many the oldest are dropped. */
const MAX_PENDING = 10_000
/**
 * A lock holder stops waiting for Redis this long before its deadline, so that its answer still leaves
 * in time: a token whose write could not be confirmed is better than a 504.
 */
const ANSWER_MARGIN_MS = 100
/**
 * Lock releases and logouts acknowledged this long before Redis went away are sent again when it is
 * back: the replica promoted in the master's place may never have had them (RecentWrites). Both are safe
 * to repeat: a release deletes only its own lock, and a logout once more only costs a mint.
 */
const UNREPLICATED_MS = 5000

const releaseLockLua = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

/**
 * A logout: the token goes, and the generation takes a new random value, which every mint that read
 * the old one sees when it comes to write. The DEL comes first: once a script has written, Redis lets
 * the rest of it write even past maxmemory, so a logout is recorded when Redis refuses everything else.
 */
const forgetLua = `
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1`

/** Writes the token only if no logout came in since the minter read the generation ('' = none yet). */
const writeLua = `
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`

/**
 * A warm hit in one round trip: counts the caller as the caller limit does and reads the identity's
 * token and generation. KEYS: the caller's counter, the token, the generation; ARGV: the window.
 */
const countAndReadLua = `${COUNT_CALLER_LUA}
return {current, ttl, redis.call('GET', KEYS[2]), redis.call('GET', KEYS[3])}`

/** What one read of an identity's keys found. */
interface Seen {
  token: MintedToken | undefined
  /** The identity's generation: '' until its first logout, then a new random value at each. */
  generation: string
}

/**
 * The token cache shared by every replica. Keys: `<prefix>tok:<emailHash>`, values sealed by
 * CacheCrypto. One replica mints an identity at a time: it holds `<prefix>lock:<emailHash>` (SET NX PX
 * with a random owner, released by compare-and-delete), writes the cache, then announces on
 * `<prefix>filled`; the others wait for that notice (or poll) and read the cache.
 *
 * A logout wins over every mint in flight: it replaces `<prefix>gen:<emailHash>`, and a minter writes
 * only if the generation it read before minting is still there. When it is not, the holder mints
 * again, since requests that came after the logout (here or on other replicas) may be waiting for it.
 *
 * When Redis fails, each operation falls back to the per-process store instead of failing the request.
 * When Redis answers but refuses writes (or evicts keys), tokens are kept in the per-process store too,
 * each under the generation it was minted in, so a logout recorded by any replica still reaches them.
 */
export function createRedisTokenStore (options: RedisTokenStoreOptions): TokenStore {
  const { link, crypto, fallback, ttlMs, lockTtlMs, pendingForgets, clock } = options
  const random = options.random ?? Math.random
  const tokenKey = (hash: string): string => `${link.keyPrefix}tok:${hash}`
  const lockKey = (hash: string): string => `${link.keyPrefix}lock:${hash}`
  const generationKey = (hash: string): string => `${link.keyPrefix}gen:${hash}`
  // As long as any token cached before the logout could live: a generation that vanished sooner would
  // let a token kept in process memory before the logout match again.
  const generationTtlMs = Math.max(ttlMs, lockTtlMs * 2 + 60_000)
  const filledChannel = `${link.keyPrefix}filled`
  const releaseLock = link.defineScript('chatTokenReleaseLock', 1, releaseLockLua)
  const forgetScript = link.defineScript('chatTokenForget', 2, forgetLua)
  const writeScript = link.defineScript('chatTokenWrite', 2, writeLua)
  const countAndRead = link.defineScript('chatTokenCountAndRead', 3, countAndReadLua, { buffers: true })
  const notices = new FillNotices()
  /**
   * Locks this process may hold but could not release (owner → hash): waiters would sit out their TTL.
   * Keyed by owner: two timed-out SETs for one identity must not replace each other, as only one of
   * them may be the lock that is really there.
   */
  const pendingReleases = new Map<string, string>()
  /** Releases (owner → hash) and logouts (hash → hash) Redis acknowledged lately. */
  const recentReleases = new RecentWrites<string>({ keepMs: UNREPLICATED_MS, maxEntries: MAX_PENDING, clock })
  const recentForgets = new RecentWrites<string>({ keepMs: UNREPLICATED_MS, maxEntries: MAX_PENDING, clock })

  /** A replay of pending logouts is running: the next trigger finds the entries it has not finished. */
  let replaying = false
  link.subscribe(filledChannel, message => notices.deliver(message))
  link.onUp(downSince => {
    // A logout may have reached Redis from another replica while this one could not see it.
    fallback.clear()
    void replayForgets()
    replayReleases()
    // Redis may be another server now (a failover), without the last writes the old master took.
    for (const [owner, hash] of recentReleases.since(downSince - UNREPLICATED_MS)) void release(hash, owner)
    for (const [hash] of recentForgets.since(downSince - UNREPLICATED_MS)) void recordForget(hash)
  })
  // A release refused as a write (NOPERM, MISCONF) is as pending as one that could not reach Redis.
  link.onWritesAccepted(() => {
    void replayForgets()
    replayReleases()
  })
  // Logouts kept from before a restart go out as soon as Redis can take them.
  if (link.writable()) void replayForgets()

  /**
   * The per-process store is keyed by the email's hash. A token kept there while Redis answers carries
   * the generation it was minted in, folded into its fingerprint, so it matches only while no logout
   * has been recorded since; one kept while Redis is unreachable (generation unknown) carries none.
   */
  function localKey (key: CacheKey, hash: string, generation?: string): CacheKey {
    if (generation === undefined || generation === '') return { email: hash, fingerprint: key.fingerprint }
    return { email: hash, fingerprint: digest('sha256', `${key.fingerprint} ${generation}`, 'base64url').slice(0, 12) }
  }

  function replayReleases (): void {
    for (const [owner, hash] of pendingReleases) void release(hash, owner)
  }

  async function release (hash: string, owner: string): Promise<void> {
    pendingReleases.delete(owner)
    const released = await link.run(() => releaseLock([lockKey(hash)], [owner]))
    if (released === 1) recentReleases.add(owner, hash)
    if (released !== REDIS_UNAVAILABLE) return
    setWithinLimit(pendingReleases, owner, hash, MAX_PENDING)
  }

  async function recordForget (hash: string): Promise<unknown> {
    const recorded = await link.run(() => forgetScript([tokenKey(hash), generationKey(hash)], [randomBytes(9).toString('base64url'), generationTtlMs]), { patientMs: PATIENT_COMMAND_TIMEOUT_MS })
    if (recorded !== REDIS_UNAVAILABLE) recentForgets.add(hash, hash)
    return recorded
  }

  async function replayForgets (): Promise<void> {
    if (replaying || pendingForgets.size === 0) return
    replaying = true
    try {
      const pending = pendingForgets.list()
      const outcomes = await Promise.all(pending.map(entry => recordForget(entry.hash)))
      await pendingForgets.done(pending.filter((_entry, i) => outcomes[i] !== REDIS_UNAVAILABLE))
    } finally {
      replaying = false
    }
  }

  /** `patientMs` for the lock holder's read: the generation it finds decides whether a later logout wins. */
  async function read (key: CacheKey, hash: string, patientMs?: number): Promise<Seen | RedisUnavailable> {
    const found = await link.run(redis => redis.mgetBuffer(tokenKey(hash), generationKey(hash)), { patientMs })
    if (found === REDIS_UNAVAILABLE) return found
    return seenIn(key, hash, found[0], found[1])
  }

  function seenIn (key: CacheKey, hash: string, sealed: Buffer | null | undefined, generation: Buffer | null | undefined): Seen {
    return {
      token: sealed === null || sealed === undefined ? undefined : usableToken(crypto.open(tokenKey(hash), sealed, key), key, ttlMs, clock),
      generation: generation?.toString() ?? ''
    }
  }

  /** What a lookup answers for what a read saw (or did not): Redis's token, else the per-process store's. */
  function lookedUp (key: CacheKey, hash: string, seen: Seen | RedisUnavailable): Promise<MintedToken | undefined> | MintedToken | undefined {
    if (seen === REDIS_UNAVAILABLE) return fallback.lookup(localKey(key, hash))
    if (seen.token !== undefined || link.degradation() === undefined) return seen.token
    return fallback.lookup(localKey(key, hash, seen.generation))
  }

  /** 'stale' when a logout came in since `generation` was read: the token must not be handed out. */
  async function write (key: CacheKey, hash: string, minted: MintedToken, generation: string, patientMs: number): Promise<'stored' | 'stale' | RedisUnavailable> {
    const redisKey = tokenKey(hash)
    const lifeMs = ttlMs - (clock.now() - minted.issuedAt)
    if (lifeMs <= 0) return 'stored'
    const sealed = crypto.seal(redisKey, { ...minted, fingerprint: key.fingerprint })
    const written = await link.run(() => writeScript([redisKey, generationKey(hash)], [sealed, Math.ceil(lifeMs), generation]), { write: true, patientMs })
    return written === REDIS_UNAVAILABLE ? written : written === 1 ? 'stored' : 'stale'
  }

  /**
   * Redis is waited for as long as the deadline allows, less ANSWER_MARGIN_MS (and never longer than
   * PATIENT_COMMAND_TIMEOUT_MS per command, nor shorter than an ordinary command).
   */
  async function holdAndMint (key: CacheKey, hash: string, owner: string, deadline: Deadline, mint: () => Promise<MintedToken>): Promise<MintedToken> {
    const patienceMs = (): number => deadline.remainingMs() - ANSWER_MARGIN_MS
    let failure: unknown
    try {
      for (;;) {
        // Someone may have filled it between our lookup and taking the lock.
        const seen = await read(key, hash, patienceMs())
        if (seen !== REDIS_UNAVAILABLE && seen.token !== undefined) return seen.token
        const generation = seen === REDIS_UNAVAILABLE ? undefined : seen.generation
        const ticket = fallback.startMint(hash)
        try {
          const minted = await mint()
          // Without the generation a write could land after a logout: keep the token in this process only.
          const stored = generation === undefined ? REDIS_UNAVAILABLE : await write(key, hash, minted, generation, patienceMs())
          // A logout came in while minting; whoever asked after it may be waiting on this flight.
          if (stored === 'stale') continue
          if (stored === REDIS_UNAVAILABLE || link.degradation() !== undefined) {
            ticket.keep(localKey(key, hash, link.isUp() ? generation : undefined), minted)
          }
          return minted
        } finally {
          ticket.close()
        }
      }
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

  /**
   * Minting without the shared lock: Redis is unreachable or refuses writes. Single-flight is then per
   * process (the caching issuer's), and the token is kept in the per-process store. While Redis still answers
   * reads, a logout recorded there meanwhile (by any replica) makes this process mint again.
   */
  async function fillLocally (key: CacheKey, hash: string, deadline: Deadline, mint: () => Promise<MintedToken>): Promise<MintedToken> {
    for (;;) {
      const seen = await read(key, hash)
      if (seen === REDIS_UNAVAILABLE) return fallback.mintOnce(localKey(key, hash), deadline, mint)
      if (seen.token !== undefined) return seen.token
      const minted = await fallback.mintOnce(localKey(key, hash, seen.generation), deadline, mint)
      const after = await link.run(redis => redis.get(generationKey(hash)))
      if (after === REDIS_UNAVAILABLE || (after ?? '') === seen.generation) return minted
    }
  }

  async function mintOnce (key: CacheKey, deadline: Deadline, mint: () => Promise<MintedToken>): Promise<MintedToken> {
    const hash = crypto.emailHash(key.email, key)
    if (!link.writable()) return fillLocally(key, hash, deadline, mint)
    // Listening starts before the first try for the lock and lasts the whole wait: a holder's notice
    // that comes while this waiter reads the cache between two waits is not lost.
    const listener = notices.listen(hash)
    try {
      let pollMs = FIRST_POLL_MIN_MS + random() * (FIRST_POLL_MAX_MS - FIRST_POLL_MIN_MS)
      for (;;) {
        const owner = randomBytes(16).toString('base64url')
        let sent = false
        const taken = await link.run(redis => {
          sent = true
          return redis.set(lockKey(hash), owner, 'PX', lockTtlMs, 'NX')
        }, { write: true })
        if (taken === REDIS_UNAVAILABLE) {
          // The SET may have reached Redis after we stopped waiting for it: release it once Redis is back.
          // Only if it was sent and Redis did not answer: a refusal took nothing, and while Redis is
          // suspended nothing leaves.
          if (sent && !link.isUp() && pendingReleases.size < MAX_PENDING) pendingReleases.set(owner, hash)
          return await fillLocally(key, hash, deadline, mint)
        }
        if (taken === 'OK') {
          // Free because the holder this request waited on has just failed (its notice goes out before
          // its release): answer that failure rather than call HubSpot once more per waiter.
          const failure = listener.heardFailure()
          if (failure !== undefined) {
            void release(hash, owner)
            throw failure
          }
          return await holdAndMint(key, hash, owner, deadline, mint)
        }
        const notice = await listener.next(Math.min(pollMs, Math.max(1, deadline.remainingMs())))
        if (notice?.ok === false) throw notice.error
        const found = await read(key, hash)
        if (found === REDIS_UNAVAILABLE) return await fillLocally(key, hash, deadline, mint)
        if (found.token !== undefined) return found.token
        if (deadline.expired) {
          throw new ServiceError('upstream_timeout', 'Another request was minting this token and did not finish before the deadline')
        }
        // The next SET NX takes over if the holder died; only one waiter can win it, so there is no herd.
        pollMs = Math.min(pollMs * 2, MAX_POLL_MS)
      }
    } finally {
      listener.close()
    }
  }

  return {
    lookup: async key => {
      const hash = crypto.emailHash(key.email, key)
      return lookedUp(key, hash, await read(key, hash))
    },
    lookupCounting: async (key, counter) => {
      const hash = crypto.emailHash(key.email, key)
      // The counter is a write: while Redis refuses writes, the read goes alone and the caller is
      // counted in process memory.
      if (!link.writable()) return { token: await lookedUp(key, hash, await read(key, hash)), count: undefined }
      const answer = await link.run(() => countAndRead([counter.redisKey, tokenKey(hash), generationKey(hash)], [counter.windowMs]))
      if (answer === REDIS_UNAVAILABLE) {
        // Refused as a write (Redis just ran out of memory, say): reads may still work. Unreachable: no
        // second wait for it.
        return { token: await lookedUp(key, hash, link.isUp() ? await read(key, hash) : REDIS_UNAVAILABLE), count: undefined }
      }
      const [current, ttl, sealed, generation] = answer as [number, number, Buffer | null, Buffer | null]
      return { token: await lookedUp(key, hash, seenIn(key, hash, sealed, generation)), count: { current, ttl } }
    },
    mintOnce,
    forget: async email => {
      const hash = crypto.emailHash(email)
      await fallback.forget(hash)
      if (await recordForget(hash) !== REDIS_UNAVAILABLE) {
        // Logouts kept earlier go out as soon as one gets through.
        void replayForgets()
        return
      }
      await pendingForgets.add(hash)
    }
  }
}
