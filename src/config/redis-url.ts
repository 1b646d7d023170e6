import type { EnvReader } from './env-reader.js'
import { isSentinelUrl, parseSentinelList, parseSentinelUrl, sentinelUrlFromParts } from './sentinel-url.js'

/**
 * REDIS_URL (redis://, rediss://, or the sentinel form), or the sentinel URL that REDIS_SENTINELS and
 * REDIS_SENTINEL_MASTER make, REDIS_URL then giving only credentials, TLS and database (see
 * redis/redis-options.ts). Sentinel problems never quote the URL: it may hold a password.
 */
export function readRedisUrl (read: EnvReader): string | undefined {
  const sentinels = read.raw('REDIS_SENTINELS')
  const master = read.raw('REDIS_SENTINEL_MASTER')
  const raw = read.raw('REDIS_URL')
  if (isSentinelUrl(raw)) {
    const target = parseSentinelUrl(raw!)
    if (typeof target === 'string') read.problem('REDIS_URL', target)
    if (sentinels !== undefined || master !== undefined) read.problem('REDIS_SENTINELS', 'set either a sentinel REDIS_URL or REDIS_SENTINELS with REDIS_SENTINEL_MASTER, not both')
    return typeof target === 'string' ? undefined : raw
  }
  const url = read.optionalUrl('REDIS_URL', ['redis:', 'rediss:'])
  if (sentinels === undefined && master === undefined) return url
  if (sentinels === undefined || master === undefined) {
    read.problem(sentinels === undefined ? 'REDIS_SENTINELS' : 'REDIS_SENTINEL_MASTER', 'REDIS_SENTINELS (host:port, comma-separated) and REDIS_SENTINEL_MASTER (the master name Sentinel monitors) go together')
    return undefined
  }
  const list = parseSentinelList(sentinels)
  if (typeof list === 'string') {
    read.problem('REDIS_SENTINELS', list)
    return undefined
  }
  if (raw !== undefined && url === undefined) return undefined
  const parsed = url === undefined ? undefined : new URL(url)
  if (parsed !== undefined && parsed.hostname !== master.toLowerCase()) {
    read.problem('REDIS_URL', `with REDIS_SENTINELS, its host must be the master's name "${master}": it gives only the user, password, TLS (rediss://) and database, and the Sentinels give the address`)
    return undefined
  }
  const built = sentinelUrlFromParts(sentinels, master, parsed)
  const target = parseSentinelUrl(built)
  if (typeof target === 'string') {
    read.problem(parsed === undefined ? 'REDIS_SENTINEL_MASTER' : 'REDIS_URL', target)
    return undefined
  }
  return built
}
