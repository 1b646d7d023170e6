import type { Redis, RedisOptions } from 'ioredis'
import { isSentinelUrl, parseSentinelUrl } from '../config/sentinel-url.js'

/**
 * Where Redis is, as REDIS_URL (or REDIS_SENTINELS and REDIS_SENTINEL_MASTER) says, and the ioredis
 * options that reach it. Two forms:
 *
 * - `redis://[user:password@]host[:6379][/db]`, `rediss://…` for TLS: one Redis, read by ioredis itself.
 * - `redis+sentinel://[user:password@]host1[:26379],host2[:26379]/master[/db][?sentinelUsername=…&sentinelPassword=…]`,
 *   `rediss+sentinel://…` for TLS to the Sentinels and to Redis: the Sentinels name the master. The user
 *   and password are Redis's (master and replicas); the Sentinels are asked with the credentials of the
 *   query, or none.
 *
 * Only types are imported from ioredis: loading it is left to connectRedis, when Redis is configured.
 */

/** A Sentinel that does not answer within this is skipped for the next one. */
const SENTINEL_COMMAND_TIMEOUT_MS = 500

/**
 * A client for the URL with `options` on top. A sentinel URL becomes ioredis's sentinel options, plus
 * what a failover needs: the Sentinels' "+switch-master" ends the connection to the old master at once
 * (failoverDetector), and a READONLY answer (the master was turned into a replica while connected)
 * reconnects, so the Sentinels are asked again, instead of leaving writes refused on a replica.
 */
export function createRedisClient (RedisClient: typeof Redis, url: string, options: RedisOptions): Redis {
  if (!isSentinelUrl(url)) return new RedisClient(url, options)
  return new RedisClient({ ...sentinelOptions(url), ...options })
}

export function sentinelOptions (url: string): RedisOptions {
  const target = parseSentinelUrl(url)
  if (typeof target === 'string') throw new Error(`REDIS_URL ${target}`)
  return {
    sentinels: target.sentinels,
    name: target.master,
    role: 'master',
    db: target.db,
    username: target.username,
    password: target.password,
    sentinelUsername: target.sentinelUsername,
    sentinelPassword: target.sentinelPassword,
    sentinelCommandTimeout: SENTINEL_COMMAND_TIMEOUT_MS,
    failoverDetector: true,
    reconnectOnError: error => error.message.startsWith('READONLY') ? 1 : false,
    ...(target.tls ? { tls: {}, enableTLSForSentinelMode: true, sentinelTLS: {} } : {})
  }
}

/** Where Redis is, for log lines and messages: hosts and database, never credentials. */
export function describeRedisTarget (url: string): string {
  if (isSentinelUrl(url)) {
    const target = parseSentinelUrl(url)
    if (typeof target === 'string') return 'an unreadable sentinel URL'
    return `master "${target.master}" (db ${target.db}) through Sentinels ${target.sentinels.map(({ host, port }) => `${host.includes(':') ? `[${host}]` : host}:${port}`).join(', ')}${target.tls ? ' over TLS' : ''}`
  }
  const parsed = new URL(url)
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`
}

/** The host names REDIS_URL makes the service resolve: Redis's own, or the Sentinels'. */
export function redisHostNames (url: string): string[] {
  if (!isSentinelUrl(url)) return [new URL(url).hostname]
  const target = parseSentinelUrl(url)
  return typeof target === 'string' ? [] : target.sentinels.map(sentinel => sentinel.host)
}

/** Names one Redis database (host, port, database; or master name and database), for files kept per target. */
export function redisTargetIdentity (url: string): string {
  if (isSentinelUrl(url)) {
    const target = parseSentinelUrl(url)
    return typeof target === 'string' ? url : `sentinel:${target.master}/${target.db}`
  }
  const parsed = new URL(url)
  return `${parsed.hostname}:${parsed.port}${parsed.pathname}`
}

/** Redis's own address, or the first Sentinel's, as a URL: what a message about connecting names. */
export function redisContactUrl (url: string): URL {
  if (!isSentinelUrl(url)) return new URL(url)
  const target = parseSentinelUrl(url)
  const first = typeof target === 'string' ? undefined : target.sentinels[0]
  return new URL(first === undefined ? 'redis://sentinel' : `redis://${first.host.includes(':') ? `[${first.host}]` : first.host}:${first.port}`)
}
