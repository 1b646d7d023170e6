import type { Redis, RedisOptions } from 'ioredis'

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

export const SENTINEL_PROTOCOLS = ['redis+sentinel:', 'rediss+sentinel:'] as const
const DEFAULT_SENTINEL_PORT = 26379
/** A Sentinel that does not answer within this is skipped for the next one. */
const SENTINEL_COMMAND_TIMEOUT_MS = 500
/** Master names are Sentinel configuration tokens: no spaces, no slashes. */
const MASTER_NAME = /^[A-Za-z0-9._:-]{1,128}$/

export interface SentinelTarget {
  tls: boolean
  sentinels: Array<{ host: string; port: number }>
  master: string
  db: number
  username: string | undefined
  password: string | undefined
  sentinelUsername: string | undefined
  sentinelPassword: string | undefined
}

export function isSentinelUrl (text: string | undefined): boolean {
  return text !== undefined && /^rediss?\+sentinel:\/\//i.test(text)
}

/** The parsed sentinel form, or a reason it is not one (never quoting the credentials). */
export function parseSentinelUrl (text: string): SentinelTarget | string {
  const match = /^(rediss?)\+sentinel:\/\/(?:([^@/?#]*)@)?([^/?#]*)\/?([^?#]*)(?:\?([^#]*))?$/i.exec(text)
  if (match === null) return 'is not a sentinel URL (expected redis+sentinel://[user:password@]host1:26379,host2:26379/master[/db])'
  const [, scheme = '', userinfo, hostList = '', path = '', query = ''] = match
  const sentinels = parseSentinelList(hostList)
  if (typeof sentinels === 'string') return sentinels
  const [master = '', db = '', ...rest] = path.split('/')
  if (!MASTER_NAME.test(master)) return 'must name the master after the hosts (redis+sentinel://host1:26379,host2:26379/mymaster)'
  if (rest.length > 0 || !/^\d{0,5}$/.test(db) || Number(db) > 65535) return `the database after the master name must be a number, got "${[db, ...rest].join('/')}"`
  const credentials = parseUserinfo(userinfo)
  if (credentials === undefined) return 'its user or password is not valid percent-encoding'
  const params = new URLSearchParams(query)
  const unknown = [...params.keys()].filter(key => key !== 'sentinelUsername' && key !== 'sentinelPassword')
  if (unknown.length > 0) return `knows only the query parameters sentinelUsername and sentinelPassword, got ${unknown.map(key => `"${key}"`).join(', ')}`
  return {
    tls: scheme.toLowerCase() === 'rediss',
    sentinels,
    master,
    db: Number(db),
    username: credentials.username,
    password: credentials.password,
    sentinelUsername: params.get('sentinelUsername') ?? undefined,
    sentinelPassword: params.get('sentinelPassword') ?? undefined
  }
}

/** `host1:26379,host2,[::1]:26380` → addresses, the port defaulting to 26379. */
export function parseSentinelList (text: string): Array<{ host: string; port: number }> | string {
  const entries = text.split(',').map(entry => entry.trim())
  if (entries.length === 0 || entries.some(entry => entry === '')) return 'must list at least one Sentinel as host:port, comma-separated'
  const sentinels: Array<{ host: string; port: number }> = []
  for (const entry of entries) {
    const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(entry)
    const port = Number(match?.[2] ?? DEFAULT_SENTINEL_PORT)
    if (match === null || port < 1 || port > 65535) return `has a Sentinel address that is not host:port: "${entry}"`
    sentinels.push({ host: match[1]!.replace(/^\[|\]$/g, ''), port })
  }
  return sentinels
}

function parseUserinfo (userinfo: string | undefined): { username: string | undefined; password: string | undefined } | undefined {
  if (userinfo === undefined || userinfo === '') return { username: undefined, password: undefined }
  const colon = userinfo.indexOf(':')
  try {
    const username = decodeURIComponent(colon === -1 ? userinfo : userinfo.slice(0, colon))
    const password = colon === -1 ? undefined : decodeURIComponent(userinfo.slice(colon + 1))
    // `redis+sentinel://secret@…` is a password alone, as in redis:// URLs.
    return colon === -1 ? { username: undefined, password: username } : { username: username === '' ? undefined : username, password }
  } catch {
    return undefined
  }
}

/**
 * The sentinel URL for REDIS_SENTINELS and REDIS_SENTINEL_MASTER, taking the credentials, TLS and
 * database from REDIS_URL when it is given too (its host must then be the master's name).
 */
export function sentinelUrlFromParts (sentinels: string, master: string, url: URL | undefined): string {
  const scheme = url?.protocol === 'rediss:' ? 'rediss+sentinel' : 'redis+sentinel'
  const userinfo = url === undefined || (url.username === '' && url.password === '') ? '' : `${url.username}${url.password === '' ? '' : `:${url.password}`}@`
  const db = url === undefined || url.pathname === '' || url.pathname === '/' ? '' : url.pathname
  const query = url?.search ?? ''
  const hosts = sentinels.split(',').map(entry => entry.trim()).join(',')
  return `${scheme}://${userinfo}${hosts}/${master}${db}${query}`
}

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
