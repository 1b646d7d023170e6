import type { Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import type { Clock } from '../deadline.js'
import type { RedisDegradation, ServiceEvents } from '../events.js'
import { isEvicting, type MemoryReport, parseMemoryReport } from './memory-pressure.js'
import { createRedisClient, redisHostNames } from './redis-options.js'

/**
 * The service's link to Redis: a command connection with short timeouts, a subscriber connection, and
 * the bookkeeping that lets every caller fall back to per-process state the moment Redis misbehaves.
 * Redis is an accelerator here, never a dependency: nothing waits for it, nothing fails because of it.
 */

export const DEFAULT_REDIS_KEY_PREFIX = 'ct:v1:'

/** A slow Redis must not make /chat-token slow: a command that takes longer is abandoned. */
const COMMAND_TIMEOUT_MS = 150
/**
 * The most a patient command waits (RunOptions.patientMs): one that decides whether a logout wins.
 * Abandoning one of those hands a token minted before a logout to whoever asks after it, so a Redis that
 * stalls for a moment is waited for. A logout is rare and a lock holder waits on HubSpot anyway; a Redis
 * that stays slow fails the ordinary commands first, and new requests then skip it.
 */
export const PATIENT_COMMAND_TIMEOUT_MS = 1000
/** ioredis's own timeout only clears commands that Redis never answers (we stopped waiting long before). */
const BACKSTOP_TIMEOUT_MS = 2000
const CONNECT_TIMEOUT_MS = 1000
const MAX_RECONNECT_DELAY_MS = 2000
/** After a failed command Redis is left alone for a while, doubling up to the cap while it keeps failing. */
const FIRST_SUSPENSION_MS = 1000
const MAX_SUSPENSION_MS = 30_000
/**
 * After a refused write, writes are left alone the same way (1 s doubling to 30 s) while reads go on. The
 * pause starts again from 1 s only once writes have worked this long: a Redis hovering at maxmemory
 * must not turn into a refusal every second.
 */
const WRITES_STABLE_MS = 30_000
/**
 * How often INFO is read to notice a Redis that evicts keys at maxmemory (it answers every command, so
 * nothing else tells). No request waits on that read, so it may take as long as a patient command: one
 * abandoned at the ordinary limit would leave a replica unaware for another 5 s, and a token Redis evicts
 * meanwhile would cost a second HubSpot call.
 */
const MEMORY_CHECK_MS = 5000
/** The key a background write probe sets (and lets expire) to notice that Redis accepts writes again. */
const WRITE_PROBE_KEY = 'probe'

/** Answers that mean Redis is reachable and reads work, but it will not write. */
const WRITE_REFUSALS: Readonly<Record<string, RedisDegradation>> = { OOM: 'oom', READONLY: 'readonly', NOPERM: 'noperm', MISCONF: 'misconf' }

export const REDIS_UNAVAILABLE: unique symbol = Symbol('redis unavailable')
export type RedisUnavailable = typeof REDIS_UNAVAILABLE

export type ScriptCall = (keys: string[], args: Array<string | number | Buffer>) => Promise<unknown>

export interface RunOptions {
  /**
   * The command writes: while Redis is known to refuse writes it is not sent (REDIS_UNAVAILABLE at once),
   * and when one goes through, Redis counts as accepting writes again.
   */
  write?: boolean
  /**
   * A patient command: waits this long for the answer (PATIENT_COMMAND_TIMEOUT_MS at most), and is sent
   * while Redis is being left alone after a timeout as long as the connection stands: another request's
   * command timing out must not make a lock holder skip the write that tells it of a logout. No longer
   * than COMMAND_TIMEOUT_MS, it is an ordinary command.
   */
  patientMs?: number
}

/** For readiness: what is wrong with Redis, and why, in words an operator can act on. */
export type RedisHealth = { status: 'ok' } | { status: 'degraded'; reason: RedisDegradation; detail: string }

export interface RedisLink {
  /** Prefix of every key and channel this service uses (`ct:v1:`; tests use their own). */
  readonly keyPrefix: string
  /**
   * Runs commands when Redis is usable; REDIS_UNAVAILABLE when it is not or the command failed. A failure
   * of the connection (timeout, reset, refused) leaves Redis alone for a while; a refused write (OOM,
   * READONLY, NOPERM, MISCONF) leaves only writes alone, and reads go on.
   */
  run: <T>(command: (redis: Redis) => Promise<T>, options?: RunOptions) => Promise<T | RedisUnavailable>
  /**
   * A Lua script sent once and then called by its SHA (ioredis reloads it after a Redis restart). With
   * `buffers`, strings in its reply come back as Buffers (binary values such as sealed cache entries).
   */
  defineScript: (name: string, numberOfKeys: number, lua: string, options?: { buffers?: boolean }) => ScriptCall
  /** Calls `listener` with each message published on `channel` (re-subscribed after reconnects). */
  subscribe: (channel: string, listener: (message: string) => void) => void
  /**
   * Runs after every down → up transition, before any caller sees Redis as usable again, with the
   * clock's time when Redis went down.
   */
  onUp: (listener: (downSince: number) => void) => void
  /** Runs when Redis accepts writes again after refusing them. */
  onWritesAccepted: (listener: () => void) => void
  isUp: () => boolean
  /** Reachable, and writes are not being held back after a refusal. */
  writable: () => boolean
  /** Undefined while Redis is fully usable. */
  degradation: () => RedisDegradation | undefined
  health: () => RedisHealth
  /**
   * Resolves once connected and Redis's memory has been looked at, or after `ms`; true when connected.
   * Start-up waits briefly so the first requests share state and know whether Redis is evicting.
   */
  waitUntilUp: (ms: number) => Promise<boolean>
  close: () => Promise<void>
}

export interface RedisLinkOptions {
  url: string
  keyPrefix?: string
  log: FastifyBaseLogger
  events: ServiceEvents
  clock: Clock
}

/**
 * Gives up on a command after `ms`, but only after one more pass of the event loop's I/O
 * phase: when the process itself is busy, the timer fires late with Redis's answer already waiting in
 * the socket, and that is not a slow Redis (treating it as one would fall back and mint twice).
 */
function withinCommandTimeout<T> (work: Promise<T>, ms = COMMAND_TIMEOUT_MS): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false
    const timer = setTimeout(() => setImmediate(() => {
      if (settled) return
      settled = true
      reject(new Error(`redis command took longer than ${ms} ms`))
    }), ms)
    work.then(value => {
      clearTimeout(timer)
      if (settled) return
      settled = true
      resolve(value)
    }, (error: unknown) => {
      clearTimeout(timer)
      if (settled) return
      settled = true
      reject(error instanceof Error ? error : new Error(String(error)))
    })
  })
}

/** Why writes were refused, when Redis answered with one of WRITE_REFUSALS (a script's error quotes its command's). */
function writeRefusal (error: unknown): RedisDegradation | undefined {
  if (!(error instanceof Error) || error.name !== 'ReplyError') return undefined
  // `OOM command not allowed ...`, and before Redis 7 inside a script `ERR Error running script (...): -OOM ...`.
  const code = /^(?:ERR .*?: -)?([A-Z]+) /.exec(error.message)?.[1]
  // An ACL denial inside a script (Redis 7.0) comes back as a plain ERR.
  if (code === 'ERR' && error.message.includes('user executing the script can\'t run this command')) return 'noperm'
  return code === undefined ? undefined : WRITE_REFUSALS[code]
}

const DEGRADATION_DETAILS: Readonly<Record<RedisDegradation, string>> = {
  unreachable: 'Redis does not answer: cache, locks, budget and per-caller counters are per process',
  oom: 'Redis refuses writes (OOM: maxmemory reached with nothing its policy may evict): tokens are cached per process',
  readonly: 'Redis refuses writes (READONLY: connected to a replica): tokens are cached per process',
  noperm: 'Redis refuses writes (NOPERM: the ACL user may not write): tokens are cached per process',
  misconf: 'Redis refuses writes (MISCONF: it cannot persist): tokens are cached per process',
  evicting: 'Redis evicts keys at maxmemory: tokens are also kept per process'
}

/**
 * Why a connection failed, for the log line. A name that does not resolve is said in words, with the
 * host from REDIS_URL (never its password): a bare ENOTFOUND sends people looking at Redis itself.
 */
function connectionFailure (error: Error & { code?: string }, url: string): string {
  if (error.code === 'ENOTFOUND' || error.code === 'EAI_AGAIN') {
    return `the host "${redisHostNames(url).join('", "')}" of REDIS_URL does not resolve (${error.code}): check the name`
  }
  return error.code ?? error.message
}

/**
 * ioredis is imported only here, when REDIS_URL is set: loading it costs ~200 ms of start-up that a
 * memory-mode replica (and autoscaling) should not pay.
 */
export async function connectRedis (options: RedisLinkOptions): Promise<RedisLink> {
  const { Redis: RedisClient } = await import('ioredis')
  return createRedisLink(options, RedisClient)
}

function createRedisLink (options: RedisLinkOptions, RedisClient: typeof Redis): RedisLink {
  const { log, events, clock } = options
  const client = createRedisClient(RedisClient, options.url, {
    // Commands are refused at once while disconnected instead of queueing behind a reconnect.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: BACKSTOP_TIMEOUT_MS,
    connectTimeout: CONNECT_TIMEOUT_MS,
    // Reconnect for ever: Redis coming back must need no operator.
    retryStrategy: times => Math.min(50 * 2 ** Math.min(times, 6), MAX_RECONNECT_DELAY_MS),
    lazyConnect: false
  })
  // Subscriptions are not on any request's path, so this connection may queue and wait.
  const subscriber = client.duplicate({ enableOfflineQueue: true, commandTimeout: undefined, maxRetriesPerRequest: null })

  const keyPrefix = options.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX
  let up: boolean | undefined
  let closing = false
  let probe: NodeJS.Timeout | undefined
  let suspendedUntil = 0
  let suspensionMs = FIRST_SUSPENSION_MS
  /** Set from a refused write until a write goes through again. */
  let writesRefused: RedisDegradation | undefined
  let writesPausedUntil = 0
  let writePauseMs = FIRST_SUSPENSION_MS
  let writesAcceptedSince = Number.NEGATIVE_INFINITY
  let writeProbe: NodeJS.Timeout | undefined
  /** The maxmemory policy while Redis evicts keys, else undefined. */
  let evictingPolicy: string | undefined
  let memory: MemoryReport | undefined
  let memoryChecksRefused = false
  let memoryTimer: NodeJS.Timeout | undefined
  let firstMemoryCheck: Promise<void> = Promise.resolve()
  /** Last degradation reported; null before the first. */
  let reported: RedisDegradation | undefined | null = null
  const upListeners: Array<(downSince: number) => void> = []
  /** When the link last went down (the clock's time). */
  let downSince = clock.now()
  const writeListeners: Array<() => void> = []
  const channelListeners = new Map<string, Array<(message: string) => void>>()

  function degradation (): RedisDegradation | undefined {
    if (up !== true || !usable()) return 'unreachable'
    return writesRefused ?? (evictingPolicy === undefined ? undefined : 'evicting')
  }

  /** Reports a change of what is wrong with Redis. */
  function settle (): void {
    const current = degradation()
    if (current === reported) return
    reported = current
    events.redisDegraded(current)
  }

  function setUp (next: boolean, reason?: string): void {
    if (up === next || closing) return
    up = next
    events.redisUp(next)
    if (next) {
      suspensionMs = FIRST_SUSPENSION_MS
      if (writesRefused !== undefined) scheduleWriteProbe(Math.max(0, writesPausedUntil - clock.now()))
      for (const listener of upListeners) listener(downSince)
      settle()
      log.info('redis reachable: token cache, locks and budget are shared')
    } else {
      downSince = clock.now()
      settle()
      log.warn({ reason }, 'redis unavailable: serving from per-process cache, locks and budget')
    }
  }

  function refuseWrites (reason: RedisDegradation): void {
    const now = clock.now()
    // Writes already in flight when the first refusal came back are refused too: one pause for all of them.
    if (now < writesPausedUntil) return
    if (writesRefused === undefined && now - writesAcceptedSince >= WRITES_STABLE_MS) writePauseMs = FIRST_SUSPENSION_MS
    writesPausedUntil = now + writePauseMs
    // Requests served from the per-process cache write nothing, so without this nothing would notice.
    scheduleWriteProbe(writePauseMs)
    writePauseMs = Math.min(writePauseMs * 2, MAX_SUSPENSION_MS)
    if (writesRefused === undefined) log.warn({ reason }, 'redis refuses writes: tokens are cached per process, reads go on')
    writesRefused = reason
    settle()
  }

  function writesAccepted (): void {
    if (writesRefused === undefined) return
    writesRefused = undefined
    writesAcceptedSince = clock.now()
    log.info('redis accepts writes again')
    for (const listener of writeListeners) listener()
    settle()
  }

  function scheduleWriteProbe (ms: number): void {
    if (writeProbe !== undefined || closing) return
    writeProbe = setTimeout(() => {
      writeProbe = undefined
      if (writesRefused === undefined) return
      const rest = writesPausedUntil - clock.now()
      if (rest > 0) {
        scheduleWriteProbe(rest)
        return
      }
      void run(redis => redis.set(`${keyPrefix}${WRITE_PROBE_KEY}`, '1', 'PX', 1000), { write: true })
    }, ms)
    writeProbe.unref()
  }

  async function checkMemory (): Promise<void> {
    if (memoryChecksRefused || !usable()) return
    let report: MemoryReport | undefined
    try {
      const [memorySection, statsSection] = await withinCommandTimeout(Promise.all([client.info('memory'), client.info('stats')]), PATIENT_COMMAND_TIMEOUT_MS)
      report = parseMemoryReport(`${memorySection}\n${statsSection}`)
    } catch (error) {
      // INFO refused (an ACL, a renamed command): evictions go unnoticed, as they did before this check.
      if (error instanceof Error && error.name === 'ReplyError') memoryChecksRefused = true
      return
    }
    if (report === undefined) return
    const policy = isEvicting(report, memory, evictingPolicy !== undefined) ? report.policy : undefined
    memory = report
    if (policy === evictingPolicy) return
    evictingPolicy = policy
    if (policy !== undefined) log.warn({ policy }, 'redis evicts keys at maxmemory: tokens are also kept per process')
    else log.info('redis no longer evicts keys')
    settle()
  }

  client.on('ready', () => {
    suspendedUntil = 0
    setUp(true)
    firstMemoryCheck = checkMemory()
    memoryTimer ??= setInterval(() => { void checkMemory() }, MEMORY_CHECK_MS).unref()
  })
  client.on('close', () => setUp(false, 'connection closed'))
  // Without a listener ioredis would print every reconnect failure; transitions are logged once instead.
  client.on('error', (error: Error & { code?: string }) => {
    if (client.status !== 'ready') setUp(false, connectionFailure(error, options.url))
  })
  subscriber.on('error', () => {})
  subscriber.on('message', (channel: string, message: string) => {
    for (const listener of channelListeners.get(channel) ?? []) listener(message)
  })

  function usable (): boolean {
    return client.status === 'ready' && clock.now() >= suspendedUntil
  }

  async function run<T> (command: (redis: Redis) => Promise<T>, options: RunOptions = {}): Promise<T | RedisUnavailable> {
    const patientMs = Math.min(options.patientMs ?? 0, PATIENT_COMMAND_TIMEOUT_MS)
    const patient = patientMs > COMMAND_TIMEOUT_MS
    if (patient ? client.status !== 'ready' : !usable()) return REDIS_UNAVAILABLE
    if (options.write === true && clock.now() < writesPausedUntil) return REDIS_UNAVAILABLE
    try {
      const result = await withinCommandTimeout(command(client), patient ? patientMs : COMMAND_TIMEOUT_MS)
      if (clock.now() >= suspendedUntil) setUp(true)
      if (options.write === true) writesAccepted()
      return result
    } catch (error) {
      // Redis answered, so the connection is fine: only writes are left alone, and nothing is emptied.
      const refusal = writeRefusal(error)
      if (refusal !== undefined) {
        refuseWrites(refusal)
        return REDIS_UNAVAILABLE
      }
      // Commands already in flight when Redis failed fail too: only the first one starts a suspension.
      if (clock.now() >= suspendedUntil) {
        suspendedUntil = clock.now() + suspensionMs
        // Without traffic nothing would notice Redis is back (and readiness would say degraded for ever).
        scheduleProbe(suspensionMs)
        suspensionMs = Math.min(suspensionMs * 2, MAX_SUSPENSION_MS)
      }
      setUp(false, (error as Error).message)
      return REDIS_UNAVAILABLE
    }
  }

  function scheduleProbe (ms: number): void {
    if (probe !== undefined || closing) return
    probe = setTimeout(() => {
      probe = undefined
      // A timer can fire a little before the clock reaches the end of the suspension (its start is the
      // event loop's cached time, the suspension's is the clock's). run() would then refuse without
      // pinging, and with no traffic nothing would ever probe again: wait out the rest instead.
      const rest = suspendedUntil - clock.now()
      if (rest > 0) {
        scheduleProbe(rest)
        return
      }
      void run(redis => redis.ping())
    }, ms)
    probe.unref()
  }

  function defineScript (name: string, numberOfKeys: number, lua: string, options: { buffers?: boolean } = {}): ScriptCall {
    client.defineCommand(name, { numberOfKeys, lua })
    const commands = client as unknown as Record<string, (...args: Array<string | number | Buffer>) => Promise<unknown>>
    // ioredis defines `<name>Buffer` beside `<name>` for every command.
    const method = options.buffers === true ? `${name}Buffer` : name
    return (keys, args) => commands[method]!.call(client, ...keys, ...args)
  }

  function subscribe (channel: string, listener: (message: string) => void): void {
    const listeners = channelListeners.get(channel)
    if (listeners !== undefined) {
      listeners.push(listener)
      return
    }
    channelListeners.set(channel, [listener])
    subscriber.subscribe(channel).catch(() => {})
  }

  async function waitUntilUp (ms: number): Promise<boolean> {
    const giveUpAt = Date.now() + ms
    const connected = client.status === 'ready' || await new Promise<boolean>(resolve => {
      const timer = setTimeout(() => {
        client.off('ready', onReady)
        resolve(false)
      }, ms)
      const onReady = (): void => {
        clearTimeout(timer)
        resolve(true)
      }
      client.once('ready', onReady)
    })
    // The 'ready' handler above started it (it was registered first). Start-up waits for it only within
    // `ms`; its answer counts whenever it comes.
    if (connected) await withinCommandTimeout(firstMemoryCheck, Math.max(0, giveUpAt - Date.now())).catch(() => {})
    return connected
  }

  return {
    keyPrefix,
    run,
    defineScript,
    subscribe,
    onUp: listener => { upListeners.push(listener) },
    onWritesAccepted: listener => { writeListeners.push(listener) },
    isUp: () => up === true && usable(),
    writable: () => up === true && usable() && clock.now() >= writesPausedUntil,
    degradation,
    health: () => {
      const reason = degradation()
      if (reason === undefined) return { status: 'ok' }
      const detail = reason === 'evicting' ? `${DEGRADATION_DETAILS.evicting} (maxmemory-policy ${evictingPolicy})` : DEGRADATION_DETAILS[reason]
      return { status: 'degraded', reason, detail }
    },
    waitUntilUp,
    close: async () => {
      closing = true
      clearTimeout(probe)
      clearTimeout(writeProbe)
      clearInterval(memoryTimer)
      client.disconnect()
      subscriber.disconnect()
    }
  }
}
