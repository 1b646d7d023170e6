/**
 * The sentinel forms of REDIS_URL, parsed and checked at start-up (redis/redis-options.ts turns them
 * into ioredis options):
 * `redis+sentinel://[user:password@]host1[:26379],host2[:26379]/master[/db][?sentinelUsername=…&sentinelPassword=…]`,
 * `rediss+sentinel://…` for TLS to the Sentinels and to Redis.
 */

const DEFAULT_SENTINEL_PORT = 26379
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
