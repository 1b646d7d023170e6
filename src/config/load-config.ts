import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { EnvReader, ordinal, readSecret, secretList } from './env-reader.js'
import { MIN_JWT_SECRET_BYTES, readJwt } from './jwt-settings.js'
import { readRedisUrl } from './redis-url.js'
import { LOG_LEVELS, type Config, type ConfigWarning, type Env, type RateBudget, type UserLookupConfig } from './types.js'
import { httpsUnlessLoopback, type UpstreamUrlCheck } from './upstream-url.js'

/**
 * `loadConfig` is pure apart from reading the `_FILE` secrets through the injected `readFile`; it
 * collects every problem and throws one ConfigError that lists them all.
 */

/** HubSpot identification tokens live 12 h; caching one longer than 11 h 55 min would hand out dead tokens. */
const MAX_TOKEN_CACHE_TTL_S = 42_900

export class ConfigError extends Error {
  readonly problems: string[]

  constructor (problems: string[]) {
    super(`Invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems.map(p => `  - ${p}`).join('\n')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

export interface LoadConfigOptions {
  readFile?: (path: string) => string
}

export function loadConfig (env: Env, options: LoadConfigOptions = {}): Config {
  const readFile = options.readFile ?? ((path: string) => readFileSync(path, 'utf8'))
  const problems: string[] = []
  const warnings: ConfigWarning[] = []
  const read = new EnvReader(env, problems)
  const demo = read.boolean('CHAT_TOKEN_DEMO', false)
  const upstreamUrl = httpsUnlessLoopback(read, read.boolean('ALLOW_HTTP_UPSTREAMS', false))

  const config: Config = {
    port: read.integer('PORT', 3000, 0, 65535),
    host: read.text('HOST', '0.0.0.0'),
    metricsPort: read.integer('METRICS_PORT', 9464, 0, 65535),
    logLevel: read.oneOf('LOG_LEVEL', LOG_LEVELS, 'info'),
    trustProxy: readTrustProxy(read),
    hubspot: {
      accessToken: readSecret(read, 'HUBSPOT_ACCESS_TOKEN', readFile, true) ?? '',
      baseUrl: upstreamUrl('HUBSPOT_BASE_URL', read.url('HUBSPOT_BASE_URL', 'https://api.hubapi.com', ['http:', 'https:'])) ?? '',
      apiVersion: read.matching('HUBSPOT_API_VERSION', 'v3', /^(v3|\d{4}-(0[1-9]|1[0-2]))$/, '"v3" or a date version such as "2026-03"'),
      timeoutMs: read.integer('HUBSPOT_TIMEOUT_MS', 5000, 100, 120_000),
      maxRetries: read.integer('HUBSPOT_MAX_RETRIES', 2, 0, 10),
      rateLimit: readBudget(read, 'HUBSPOT_RATE_LIMIT', '100/10s'),
      rateLimitReplicas: read.integer('HUBSPOT_RATE_LIMIT_REPLICAS', 1, 1, 10_000),
      accountTimeZone: readTimeZone(read, 'HUBSPOT_ACCOUNT_TIME_ZONE', 'UTC'),
      dailyLimit: read.raw('HUBSPOT_DAILY_LIMIT') === undefined ? undefined : read.integer('HUBSPOT_DAILY_LIMIT', 0, 1, 1_000_000_000)
    },
    jwt: readJwt(read, readFile, { demo, upstreamUrl, warnings }),
    identity: {
      emailClaim: read.text('EMAIL_CLAIM', 'email'),
      firstNameClaim: read.text('FIRST_NAME_CLAIM', 'given_name'),
      lastNameClaim: read.text('LAST_NAME_CLAIM', 'family_name'),
      requireEmailVerified: read.boolean('REQUIRE_EMAIL_VERIFIED', false)
    },
    userLookup: readUserLookup(read, upstreamUrl, readFile),
    corsOrigins: readCorsOrigins(read),
    tokenCache: {
      ttlS: read.integer('TOKEN_CACHE_TTL_S', 21_600, 1, MAX_TOKEN_CACHE_TTL_S),
      maxEntries: read.integer('TOKEN_CACHE_MAX_ENTRIES', 100_000, 1, 10_000_000),
      mintLimit: readBudget(read, 'TOKEN_MINT_LIMIT', '10/1h')
    },
    redisUrl: readRedisUrl(read),
    cacheKey: readCacheKey(read, readFile),
    secretFiles: {
      hubspotAccessToken: read.raw('HUBSPOT_ACCESS_TOKEN_FILE'),
      jwtSecret: read.raw('JWT_SECRET_FILE'),
      jwtPublicKey: read.raw('JWT_PUBLIC_KEY_FILE'),
      userLookupAuth: read.raw('USER_LOOKUP_AUTH_FILE'),
      cacheKey: read.raw('CACHE_KEY_FILE')
    },
    callerRateLimit: {
      max: read.integer('RATE_LIMIT_MAX', 30, 1, 1_000_000),
      windowS: read.integer('RATE_LIMIT_WINDOW_S', 60, 1, 86_400)
    },
    shutdownDrainMs: read.integer('SHUTDOWN_DRAIN_MS', 5000, 0, 600_000),
    http: {
      keepAliveTimeoutMs: read.integer('KEEP_ALIVE_TIMEOUT_MS', 72_000, 1000, 3_600_000),
      headersTimeoutMs: read.integer('HEADERS_TIMEOUT_MS', 10_000, 1000, 600_000),
      requestTimeoutMs: read.integer('REQUEST_TIMEOUT_MS', 15_000, 1000, 600_000)
    },
    loadShedding: {
      maxEventLoopDelayMs: read.integer('MAX_EVENT_LOOP_DELAY_MS', 1000, 0, 60_000),
      maxHeapUsedBytes: read.raw('MAX_HEAP_USED_BYTES') === undefined ? undefined : read.integer('MAX_HEAP_USED_BYTES', 0, 0, Number.MAX_SAFE_INTEGER)
    },
    demo,
    warnings
  }
  if (config.metricsPort !== 0 && config.metricsPort === config.port) {
    read.problem('METRICS_PORT', 'must differ from PORT: metrics never share the public listener')
  }
  if (config.http.headersTimeoutMs > config.http.requestTimeoutMs) {
    read.problem('HEADERS_TIMEOUT_MS', 'must not exceed REQUEST_TIMEOUT_MS (Node refuses it)')
  }

  if (problems.length > 0) throw new ConfigError(problems)
  return config
}

function readTrustProxy (read: EnvReader): boolean | number | string[] {
  const value = read.raw('TRUST_PROXY')
  if (value === undefined || value.toLowerCase() === 'false') return false
  if (value.toLowerCase() === 'true') return true
  if (/^\d+$/.test(value)) return Number(value)
  const entries = read.list('TRUST_PROXY')
  const bad = entries.filter(entry => !isAddressOrCidr(entry))
  if (bad.length > 0) {
    read.problem('TRUST_PROXY', `must be true, false, a hop count or a comma list of IP addresses or CIDRs; not valid: ${bad.join(', ')}`)
    return false
  }
  return entries
}

function isAddressOrCidr (entry: string): boolean {
  const [address = '', prefix, ...rest] = entry.split('/')
  const family = isIP(address)
  if (family === 0 || rest.length > 0) return false
  if (prefix === undefined) return true
  return /^\d+$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128)
}

const durationUnitsMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

function readBudget (read: EnvReader, name: string, fallback: string): RateBudget {
  const value = read.raw(name) ?? fallback
  const match = /^(\d+)\s*\/\s*(\d*)\s*(ms|s|m|h)$/.exec(value)
  const max = Number(match?.[1])
  const windowMs = Number(match?.[2] === '' ? 1 : match?.[2]) * (durationUnitsMs[match?.[3] ?? ''] ?? NaN)
  if (match === null || !(max >= 1) || !(windowMs >= 1)) {
    read.problem(name, `must look like "100/10s" (calls per window; units ms, s, m, h), got "${value}"`)
    return { max: 100, windowMs: 10_000 }
  }
  return { max, windowMs }
}

/** True when `name` is a time zone this runtime knows (an IANA name such as `America/New_York`, or `UTC`). */
export function isTimeZone (name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name })
    return true
  } catch {
    return false
  }
}

/** An IANA time zone name, checked against the runtime's own zone data (Intl). */
function readTimeZone (read: EnvReader, name: string, fallback: string): string {
  const value = read.raw(name) ?? fallback
  if (!isTimeZone(value)) {
    read.problem(name, `must be an IANA time zone name such as "America/New_York" or "UTC" (the HubSpot account's, from its settings), got "${value}"`)
    return fallback
  }
  return value
}

function readUserLookup (read: EnvReader, upstreamUrl: UpstreamUrlCheck, readFile: (path: string) => string): UserLookupConfig | undefined {
  const urlTemplate = read.raw('USER_LOOKUP_URL')
  const timeoutMs = read.integer('USER_LOOKUP_TIMEOUT_MS', 3000, 100, 60_000)
  if (urlTemplate === undefined) return undefined
  const marker = 'chat-token-subject-marker'
  const sample = urlTemplate.replaceAll('{sub}', marker)
  if (!urlTemplate.includes('{sub}') || !URL.canParse(sample) || !['http:', 'https:'].includes(new URL(sample).protocol)) {
    read.problem('USER_LOOKUP_URL', 'must be an http(s) URL template containing {sub}')
    return undefined
  }
  // The subject may pick the record, never the server: {sub} belongs in the path or the query.
  const parsed = new URL(sample)
  if (parsed.host.includes(marker) || parsed.username.includes(marker) || parsed.password.includes(marker) || parsed.hash.includes(marker)) {
    read.problem('USER_LOOKUP_URL', 'must have {sub} in the path or the query, not in the host, the user name or the fragment')
    return undefined
  }
  if (upstreamUrl('USER_LOOKUP_URL', urlTemplate) === undefined) return undefined
  const authorization = readSecret(read, 'USER_LOOKUP_AUTH', readFile, false)
  const authorizationProblem = authorization === undefined ? undefined : headerValueProblem(authorization)
  if (authorizationProblem !== undefined) read.problem(read.raw('USER_LOOKUP_AUTH_FILE') === undefined ? 'USER_LOOKUP_AUTH' : 'USER_LOOKUP_AUTH_FILE', authorizationProblem)
  return { urlTemplate, authorization, timeoutMs }
}

/** Why a value cannot be sent as an HTTP header (never quoting it), or undefined when it can. */
export function headerValueProblem (value: string): string | undefined {
  return /^[\x20-\x7e]+$/.test(value) ? undefined : 'must be one line of printable ASCII (it is sent as a header)'
}

/** Why a HubSpot access token cannot be one, or undefined. */
export function accessTokenProblem (value: string): string | undefined {
  return /^[\x21-\x7e]+$/.test(value) ? undefined : 'must be one word of printable ASCII (no spaces or line breaks)'
}

/** CACHE_KEY: one or more keys, newest first, comma-separated, each at least 32 bytes. */
export function cacheKeyProblems (text: string): string[] {
  const keys = secretList(text)
  if (keys.length === 0) return ['holds no key']
  return keys.flatMap((key, i) => {
    const bytes = Buffer.byteLength(key, 'utf8')
    return bytes >= MIN_JWT_SECRET_BYTES ? [] : [`${ordinal(i, keys.length)}must be at least ${MIN_JWT_SECRET_BYTES} bytes, got ${bytes}; make one with: openssl rand -base64 48`]
  })
}

function readCacheKey (read: EnvReader, readFile: (path: string) => string): string | undefined {
  const value = readSecret(read, 'CACHE_KEY', readFile, false)
  if (value === undefined) return undefined
  const name = read.raw('CACHE_KEY_FILE') === undefined ? 'CACHE_KEY' : 'CACHE_KEY_FILE'
  for (const problem of cacheKeyProblems(value)) read.problem(name, problem)
  return value
}

function readCorsOrigins (read: EnvReader): string[] {
  const origins = read.list('CORS_ORIGINS')
  const bad = origins.filter(origin => !URL.canParse(origin) || new URL(origin).origin !== origin)
  if (bad.length > 0) {
    read.problem('CORS_ORIGINS', `must be a comma list of exact origins such as https://app.example.com (no path, no trailing slash, no "*"); not valid: ${bad.join(', ')}`)
    return []
  }
  return origins
}
