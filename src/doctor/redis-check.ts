import { randomUUID } from 'node:crypto'
import type { Config } from '../config/types.js'
import { DEFAULT_REDIS_KEY_PREFIX } from '../redis/connection.js'
import { createRedisClient, describeRedisTarget, redisContactUrl } from '../redis/redis-options.js'
import { isSentinelUrl } from '../config/sentinel-url.js'
import { checkResult, type CheckResult, elapsedMs } from './check.js'
import { connectionProblem, errorCode } from './network-errors.js'

const NAME = 'redis'
const TIMEOUT_MS = 2000

/** PING, then a write, a read back and a delete of a key under the service's own prefix. */
export async function checkRedis (config: Config): Promise<CheckResult> {
  if (config.redisUrl === undefined) {
    return checkResult(NAME, 'skip', 'no REDIS_URL: each replica keeps its own token cache and budgets (fine for one replica)')
  }
  const url = redisContactUrl(config.redisUrl)
  const where = isSentinelUrl(config.redisUrl) ? describeRedisTarget(config.redisUrl) : `${url.protocol}//${url.hostname}${url.port === '' ? '' : `:${url.port}`}`
  const { Redis } = await import('ioredis')
  const client = createRedisClient(Redis, config.redisUrl, {
    lazyConnect: true,
    connectTimeout: TIMEOUT_MS,
    commandTimeout: TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    sentinelRetryStrategy: () => null
  })
  let lastError: unknown
  client.on('error', error => { lastError = error })
  const key = `${DEFAULT_REDIS_KEY_PREFIX}doctor:${randomUUID()}`
  let step = 'connect'
  try {
    await client.connect()
    step = 'PING'
    const pingStartedAt = performance.now()
    await client.ping()
    const pingMs = elapsedMs(pingStartedAt)
    const value = randomUUID()
    step = 'SET'
    await client.set(key, value, 'PX', 60_000)
    step = 'GET'
    const read = await client.get(key)
    step = 'DEL'
    const deleted = await client.del(key)
    if (read !== value || deleted !== 1) {
      return checkResult(NAME, 'fail', `${where}: a key written could not be read back and deleted`, ['Another client may be changing keys under the same prefix, or this is not a plain Redis.'], { pingMs })
    }
    return checkResult(NAME, 'ok', `${where}: PING ${pingMs} ms; wrote, read back and deleted a key under "${DEFAULT_REDIS_KEY_PREFIX}"`, [], { pingMs, key })
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    const code = errorCode(lastError) ?? errorCode(error)
    const why = /NOAUTH|WRONGPASS|invalid password/i.test(message)
      ? 'the password or user in REDIS_URL is refused'
      : /READONLY/.test(message)
        ? 'it is a read-only replica: point REDIS_URL at the primary'
        : step === 'connect'
          ? connectionProblem(code, url, 'REDIS_URL', TIMEOUT_MS)
          : `${step} failed (${message.split('\n', 1)[0]})`
    return checkResult(NAME, 'fail', `${where}: ${why}`, [], { step, code })
  } finally {
    client.disconnect()
  }
}
