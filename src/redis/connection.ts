import type { Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import type { Clock } from '../deadline.js'
import type { TokenEvents } from '../tokens/token-events.js'

/**
 * The service's link to Redis: a command connection with short timeouts, a subscriber connection, and
 * the bookkeeping that lets every caller fall back to per-process state the moment Redis misbehaves.
 * Redis is an accelerator here, never a dependency: nothing waits for it, nothing fails because of it.
 */

export const DEFAULT_REDIS_KEY_PREFIX = 'ct:v1:'

/** A slow Redis must not make /chat-token slow: a command that takes longer is abandoned. */
const COMMAND_TIMEOUT_MS = 150
/** ioredis's own timeout only clears commands that Redis never answers (we stopped waiting long before). */
const BACKSTOP_TIMEOUT_MS = 2000
const CONNECT_TIMEOUT_MS = 1000
const MAX_RECONNECT_DELAY_MS = 2000
/** After a failed command Redis is left alone for a while, doubling up to the cap while it keeps failing. */
const FIRST_SUSPENSION_MS = 1000
const MAX_SUSPENSION_MS = 30_000

export const REDIS_UNAVAILABLE: unique symbol = Symbol('redis unavailable')
export type RedisUnavailable = typeof REDIS_UNAVAILABLE

export type ScriptCall = (keys: string[], args: Array<string | number>) => Promise<unknown>

export interface RedisLink {
  /** Prefix of every key and channel this service uses (`ct:v1:`; tests use their own). */
  readonly keyPrefix: string
  /** Runs commands when Redis is usable; REDIS_UNAVAILABLE when it is not or the command failed. */
  run: <T>(command: (redis: Redis) => Promise<T>) => Promise<T | RedisUnavailable>
  /** A Lua script sent once and then called by its SHA (ioredis reloads it after a Redis restart). */
  defineScript: (name: string, numberOfKeys: number, lua: string) => ScriptCall
  /** Calls `listener` with each message published on `channel` (re-subscribed after reconnects). */
  subscribe: (channel: string, listener: (message: string) => void) => void
  /** Runs after every down → up transition, before any caller sees Redis as usable again. */
  onUp: (listener: () => void) => void
  isUp: () => boolean
  /** Resolves once connected (true) or after `ms` (false); start-up waits briefly so the first requests share state. */
  waitUntilUp: (ms: number) => Promise<boolean>
  close: () => Promise<void>
}

export interface RedisLinkOptions {
  url: string
  keyPrefix?: string
  log: FastifyBaseLogger
  events: TokenEvents
  clock: Clock
}

/**
 * Gives up on a command after COMMAND_TIMEOUT_MS, but only after one more pass of the event loop's I/O
 * phase: when the process itself is busy, the timer fires late with Redis's answer already waiting in
 * the socket, and that is not a slow Redis (treating it as one would fall back and mint twice).
 */
function withinCommandTimeout<T> (work: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false
    const timer = setTimeout(() => setImmediate(() => {
      if (settled) return
      settled = true
      reject(new Error(`redis command took longer than ${COMMAND_TIMEOUT_MS} ms`))
    }), COMMAND_TIMEOUT_MS)
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
  const client = new RedisClient(options.url, {
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

  let up: boolean | undefined
  let closing = false
  let probe: NodeJS.Timeout | undefined
  let suspendedUntil = 0
  let suspensionMs = FIRST_SUSPENSION_MS
  const upListeners: Array<() => void> = []
  const channelListeners = new Map<string, Array<(message: string) => void>>()

  function setUp (next: boolean, reason?: string): void {
    if (up === next || closing) return
    up = next
    events.redisUp(next)
    if (next) {
      suspensionMs = FIRST_SUSPENSION_MS
      for (const listener of upListeners) listener()
      log.info('redis reachable: token cache, locks and budget are shared')
    } else {
      log.warn({ reason }, 'redis unavailable: serving from per-process cache, locks and budget')
    }
  }

  client.on('ready', () => {
    suspendedUntil = 0
    setUp(true)
  })
  client.on('close', () => setUp(false, 'connection closed'))
  // Without a listener ioredis would print every reconnect failure; transitions are logged once instead.
  client.on('error', (error: Error & { code?: string }) => {
    if (client.status !== 'ready') setUp(false, error.code ?? error.message)
  })
  subscriber.on('error', () => {})
  subscriber.on('message', (channel: string, message: string) => {
    for (const listener of channelListeners.get(channel) ?? []) listener(message)
  })

  function usable (): boolean {
    return client.status === 'ready' && clock.now() >= suspendedUntil
  }

  async function run<T> (command: (redis: Redis) => Promise<T>): Promise<T | RedisUnavailable> {
    if (!usable()) return REDIS_UNAVAILABLE
    try {
      const result = await withinCommandTimeout(command(client))
      if (clock.now() >= suspendedUntil) setUp(true)
      return result
    } catch (error) {
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

  function defineScript (name: string, numberOfKeys: number, lua: string): ScriptCall {
    client.defineCommand(name, { numberOfKeys, lua })
    const commands = client as unknown as Record<string, (...args: Array<string | number>) => Promise<unknown>>
    return (keys, args) => commands[name]!.call(client, ...keys, ...args)
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

  function waitUntilUp (ms: number): Promise<boolean> {
    if (client.status === 'ready') return Promise.resolve(true)
    return new Promise(resolve => {
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
  }

  return {
    keyPrefix: options.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX,
    run,
    defineScript,
    subscribe,
    onUp: listener => { upListeners.push(listener) },
    isUp: () => up === true && usable(),
    waitUntilUp,
    close: async () => {
      closing = true
      clearTimeout(probe)
      client.disconnect()
      subscriber.disconnect()
    }
  }
}
