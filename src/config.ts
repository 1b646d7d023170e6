import { createPublicKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { isTimeZone } from './hubspot/account-day.js'
import { isSentinelUrl, parseSentinelList, parseSentinelUrl, sentinelUrlFromParts } from './redis/redis-options.js'

/**
 * The service's whole configuration, read from environment variables once at start-up.
 * `loadConfig` is pure apart from reading the `_FILE` secrets through the injected `readFile`; it
 * collects every problem and throws one ConfigError that lists them all.
 */

export type JwtAlgorithm =
  | 'HS256' | 'HS384' | 'HS512'
  | 'RS256' | 'RS384' | 'RS512'
  | 'PS256' | 'PS384' | 'PS512'
  | 'ES256' | 'ES384' | 'ES512'
  | 'EdDSA'

export type JwtKeySource =
  | { kind: 'secret'; secret: string }
  | { kind: 'public-key'; pem: string }
  | { kind: 'jwks'; url: string; cooldownS: number }

export interface JwtConfig {
  key: JwtKeySource
  algorithms: JwtAlgorithm[]
  issuers: string[]
  audiences: string[]
  clockToleranceS: number
  cookieName: string | undefined
}

export interface IdentityConfig {
  emailClaim: string
  firstNameClaim: string
  lastNameClaim: string
  requireEmailVerified: boolean
}

export interface UserLookupConfig {
  urlTemplate: string
  authorization: string | undefined
  timeoutMs: number
}

export interface RateBudget {
  max: number
  windowMs: number
}

export interface HubSpotConfig {
  accessToken: string
  baseUrl: string
  apiVersion: string
  timeoutMs: number
  maxRetries: number
  rateLimit: RateBudget
  rateLimitReplicas: number
  /** HUBSPOT_ACCOUNT_TIME_ZONE, an IANA name: HubSpot's daily limit resets at midnight there. */
  accountTimeZone: string
  /** HUBSPOT_DAILY_LIMIT: the fleet's HubSpot calls per account day; undefined = no ceiling of our own. */
  dailyLimit: number | undefined
}

export interface Config {
  port: number
  host: string
  metricsPort: number
  logLevel: LogLevel
  trustProxy: boolean | number | string[]
  hubspot: HubSpotConfig
  jwt: JwtConfig
  identity: IdentityConfig
  userLookup: UserLookupConfig | undefined
  corsOrigins: string[]
  /** `mintLimit`: new tokens per identity per rolling window (TOKEN_MINT_LIMIT). */
  tokenCache: { ttlS: number; maxEntries: number; mintLimit: RateBudget }
  redisUrl: string | undefined
  /** CACHE_KEY(_FILE): the token cache's own key material, newest first (comma-separated); unset = derived from the HubSpot token. */
  cacheKey: string | undefined
  /** Paths of the `_FILE` secrets: re-read when they change and on SIGHUP (src/secrets). */
  secretFiles: SecretFiles
  callerRateLimit: { max: number; windowS: number }
  shutdownDrainMs: number
  /** Public listener limits; docs/production.md says why keep-alive outlives the load balancer's idle timeout. */
  http: { keepAliveTimeoutMs: number; headersTimeoutMs: number; requestTimeoutMs: number }
  /** Load shedding: 0 turns a threshold off; an unset heap threshold means 90% of V8's heap limit. */
  loadShedding: { maxEventLoopDelayMs: number; maxHeapUsedBytes: number | undefined }
  /** CHAT_TOKEN_DEMO: the published demo JWT secret is accepted (the demo and the dev compose stack only). */
  demo: boolean
  /** Risky but allowed settings, each logged once as a warning at start-up. */
  warnings: ConfigWarning[]
}

export interface ConfigWarning {
  setting: string
  message: string
}

export interface SecretFiles {
  hubspotAccessToken: string | undefined
  jwtSecret: string | undefined
  jwtPublicKey: string | undefined
  userLookupAuth: string | undefined
  cacheKey: string | undefined
}

export type Env = Readonly<Record<string, string | undefined>>

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = typeof logLevels[number]

const hmacAlgorithms: JwtAlgorithm[] = ['HS256', 'HS384', 'HS512']
const rsaAlgorithms: JwtAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']
const pssAlgorithms: JwtAlgorithm[] = ['PS256', 'PS384', 'PS512']
const asymmetricAlgorithms: JwtAlgorithm[] = [...rsaAlgorithms, 'ES256', 'ES384', 'ES512', 'EdDSA']
const ecAlgorithmByCurve: Record<string, JwtAlgorithm> = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' }

/** RFC 7518 §3.2: an HMAC key must be at least as long as the hash output (32 bytes for HS256). */
export const MIN_JWT_SECRET_BYTES = 32

/**
 * JWT secrets that appear in this repository's deployment files and docs. Anyone can sign sessions with
 * them, so they are refused unless CHAT_TOKEN_DEMO says this is the demo.
 */
export const PUBLISHED_DEMO_SECRETS: ReadonlySet<string> = new Set(['demo-only-session-secret-never-use-in-production'])

/** HubSpot identification tokens live 12 h; caching one longer than 11 h 55 min would hand out dead tokens. */
export const MAX_TOKEN_CACHE_TTL_S = 42_900

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
    logLevel: read.oneOf('LOG_LEVEL', logLevels, 'info'),
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

/** Reads and checks one variable at a time, noting each problem instead of stopping at the first. */
class EnvReader {
  constructor (private readonly env: Env, private readonly problems: string[]) {}

  raw (name: string): string | undefined {
    const value = this.env[name]
    if (value === undefined) return undefined
    const trimmed = value.trim()
    return trimmed === '' ? undefined : trimmed
  }

  problem (name: string, why: string): void {
    this.problems.push(`${name}: ${why}`)
  }

  text (name: string, fallback: string): string {
    return this.raw(name) ?? fallback
  }

  integer (name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name)
    if (value === undefined) return fallback
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      this.problem(name, `must be a whole number from ${min} to ${max}, got "${value}"`)
      return fallback
    }
    return Number(value)
  }

  boolean (name: string, fallback: boolean): boolean {
    const value = this.raw(name)?.toLowerCase()
    if (value === undefined) return fallback
    if (value === 'true' || value === '1') return true
    if (value === 'false' || value === '0') return false
    this.problem(name, `must be "true" or "false", got "${value}"`)
    return fallback
  }

  oneOf<T extends string> (name: string, allowed: readonly T[], fallback: T): T {
    const value = this.raw(name)
    if (value === undefined) return fallback
    const match = allowed.find(candidate => candidate === value.toLowerCase())
    if (match === undefined) {
      this.problem(name, `must be one of ${allowed.join(', ')}, got "${value}"`)
      return fallback
    }
    return match
  }

  matching (name: string, fallback: string, pattern: RegExp, expected: string): string {
    const value = this.raw(name)
    if (value === undefined) return fallback
    if (!pattern.test(value)) {
      this.problem(name, `must be ${expected}, got "${value}"`)
      return fallback
    }
    return value
  }

  url (name: string, fallback: string, protocols: string[]): string {
    return this.optionalUrl(name, protocols) ?? fallback
  }

  optionalUrl (name: string, protocols: string[]): string | undefined {
    const value = this.raw(name)
    if (value === undefined) return undefined
    const expected = protocols.map(p => `${p}//host:port`).join(' or ')
    if (!URL.canParse(value)) {
      // The value may embed a password (redis://:secret@host): only parts that cannot hold it are echoed,
      // and nothing at all once an "@" says credentials are there.
      const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(value)?.[1]
      const port = authority === undefined ? undefined : /:([^:\]]*)$/.exec(authority)?.[1]
      const why = authority === undefined
        ? `is not a URL (expected ${expected})`
        : port !== undefined && (!/^\d{0,5}$/.test(port) || Number(port) > 65535)
          ? `is not a valid URL: its port ${value.includes('@') ? '' : `"${port}" `}is not a number from 0 to 65535`
          : `is not a valid URL: its host ${value.includes('@') ? '' : `"${authority}" `}does not parse (expected ${expected})`
      this.problem(name, why)
      return undefined
    }
    const protocol = new URL(value).protocol
    if (!protocols.includes(protocol)) {
      this.problem(name, `must start with ${protocols.map(p => `${p}//`).join(' or ')}, got "${protocol}"`)
      return undefined
    }
    return value.replace(/\/+$/, '')
  }

  list (name: string): string[] {
    return (this.raw(name) ?? '').split(',').map(item => item.trim()).filter(item => item !== '')
  }
}

function readSecret (read: EnvReader, name: string, readFile: (path: string) => string, required: boolean): string | undefined {
  const fileName = `${name}_FILE`
  const path = read.raw(fileName)
  let value: string | undefined
  if (path !== undefined) {
    try {
      value = readFile(path).trim()
    } catch (error) {
      read.problem(fileName, `cannot read "${path}" (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
      return undefined
    }
    if (value === '') {
      read.problem(fileName, `"${path}" is empty`)
      return undefined
    }
  } else {
    value = read.raw(name)
  }
  if (value === undefined) {
    if (required) read.problem(name, `is required (or set ${fileName})`)
    return undefined
  }
  return value
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

/** An IANA time zone name, checked against the runtime's own zone data (Intl). */
function readTimeZone (read: EnvReader, name: string, fallback: string): string {
  const value = read.raw(name) ?? fallback
  if (!isTimeZone(value)) {
    read.problem(name, `must be an IANA time zone name such as "America/New_York" or "UTC" (the HubSpot account's, from its settings), got "${value}"`)
    return fallback
  }
  return value
}

interface JwtReadContext {
  demo: boolean
  upstreamUrl: UpstreamUrlCheck
  warnings: ConfigWarning[]
}

function readJwt (read: EnvReader, readFile: (path: string) => string, context: JwtReadContext): JwtConfig {
  const secretGiven = read.raw('JWT_SECRET') !== undefined || read.raw('JWT_SECRET_FILE') !== undefined
  const pemGiven = read.raw('JWT_PUBLIC_KEY') !== undefined || read.raw('JWT_PUBLIC_KEY_FILE') !== undefined
  const jwksUrl = context.upstreamUrl('JWT_JWKS_URL', read.optionalUrl('JWT_JWKS_URL', ['http:', 'https:']))
  const jwksGiven = read.raw('JWT_JWKS_URL') !== undefined
  const given = [secretGiven, pemGiven, jwksGiven].filter(Boolean).length

  let key: JwtKeySource = { kind: 'secret', secret: '' }
  let allowed: JwtAlgorithm[] = hmacAlgorithms
  if (given !== 1) {
    read.problem('JWT_SECRET', `exactly one of JWT_SECRET, JWT_PUBLIC_KEY (or JWT_PUBLIC_KEY_FILE), JWT_JWKS_URL must be set (${given} are)`)
  } else if (secretGiven) {
    const secret = readSecret(read, 'JWT_SECRET', readFile, true)
    if (secret !== undefined) {
      const name = read.raw('JWT_SECRET_FILE') === undefined ? 'JWT_SECRET' : 'JWT_SECRET_FILE'
      for (const problem of jwtSecretProblems(secret, context.demo)) read.problem(name, problem)
      key = { kind: 'secret', secret }
    }
  } else if (pemGiven) {
    // Env files often carry a PEM on one line with literal "\n" escapes.
    const pem = readSecret(read, 'JWT_PUBLIC_KEY', readFile, true)?.replace(/\\n/g, '\n')
    if (pem !== undefined) {
      const parsed = publicKeysFrom(pem)
      if (typeof parsed === 'string') {
        read.problem(read.raw('JWT_PUBLIC_KEY_FILE') === undefined ? 'JWT_PUBLIC_KEY' : 'JWT_PUBLIC_KEY_FILE', parsed)
      } else {
        key = { kind: 'public-key', pem }
        allowed = asymmetricAlgorithms.filter(algorithm => parsed.some(one => algorithmsForKey(one).includes(algorithm)))
      }
    }
  } else if (jwksUrl !== undefined) {
    key = { kind: 'jwks', url: jwksUrl, cooldownS: read.integer('JWT_JWKS_COOLDOWN_S', 30, 0, 86_400) }
    allowed = asymmetricAlgorithms
  }

  const audiences = read.list('JWT_AUDIENCE')
  if (key.kind !== 'secret' && audiences.length === 0) {
    context.warnings.push({
      setting: 'JWT_AUDIENCE',
      message: 'JWT_AUDIENCE is not set: session tokens that the identity provider issued to any other application are accepted too'
    })
  }
  return {
    key,
    algorithms: readAlgorithms(read, allowed),
    issuers: read.list('JWT_ISSUER'),
    audiences,
    clockToleranceS: read.integer('JWT_CLOCK_TOLERANCE_S', 5, 0, 600),
    cookieName: readCookieName(read)
  }
}

/** Several secrets or keys, newest first: separated by commas or line breaks (a secret holds neither). */
export function secretList (text: string): string[] {
  return text.split(/[,\r\n]+/).map(item => item.trim()).filter(item => item !== '')
}

/** "secret 2 of 3 " when there are several, else nothing: problems name the one they are about. */
function ordinal (index: number, count: number): string {
  return count === 1 ? '' : `secret ${index + 1} of ${count} `
}

/**
 * JWT_SECRET holds one or more HMAC secrets, newest first (several while sessions signed with the
 * previous one are still about); each must be strong on its own, never the published demo secret.
 */
export function jwtSecretProblems (text: string, demo: boolean): string[] {
  const secrets = secretList(text)
  if (secrets.length === 0) return ['holds no secret']
  return secrets.flatMap((secret, i) => {
    const bytes = Buffer.byteLength(secret, 'utf8')
    if (bytes < MIN_JWT_SECRET_BYTES) {
      return [`${ordinal(i, secrets.length)}must be at least ${MIN_JWT_SECRET_BYTES} bytes (RFC 7518 §3.2), got ${bytes}; make one with: openssl rand -base64 48`]
    }
    if (PUBLISHED_DEMO_SECRETS.has(secret) && !demo) {
      return [`${ordinal(i, secrets.length)}is the demo secret published in this repository, so anyone can sign sessions with it; set your own (CHAT_TOKEN_DEMO=true allows it for the demo only)`]
    }
    return []
  })
}

/** Checks an upstream URL that was already read; returns it, or undefined when it is refused. */
type UpstreamUrlCheck = (name: string, url: string | undefined) => string | undefined

/**
 * Plain http to HubSpot, the JWKS or the user directory would let anyone on the path read the access
 * token or forge keys and identities. Loopback is fine (the emulator, a sidecar); a private network
 * must be allowed explicitly. The host is read as the HTTP client will read it (WHATWG URL).
 */
function httpsUnlessLoopback (read: EnvReader, allowHttp: boolean): UpstreamUrlCheck {
  return (name, url) => {
    if (url === undefined || allowHttp) return url
    const parsed = new URL(url.replaceAll('{sub}', 'sub'))
    if (parsed.protocol === 'https:' || isLoopbackHost(parsed.hostname)) return url
    read.problem(name, `must use https (http is allowed only for a loopback host, or with ALLOW_HTTP_UPSTREAMS=true on a private network), got host "${parsed.hostname}"`)
    return undefined
  }
}

export function isLoopbackHost (hostname: string): boolean {
  if (hostname === 'localhost' || hostname === '[::1]') return true
  return isIP(hostname) === 4 && hostname.startsWith('127.')
}

/** The PEM blocks of a JWT_PUBLIC_KEY value (several while a key is being replaced), newest first. */
export function pemBlocks (text: string): string[] {
  return text.match(/-----BEGIN [^-]+-----[\s\S]*?-----END [^-]+-----/g) ?? [text]
}

/** Every public key of a JWT_PUBLIC_KEY value, or what is wrong with it. */
export function publicKeysFrom (text: string): KeyObject[] | string {
  const blocks = pemBlocks(text)
  const keys: KeyObject[] = []
  for (const [i, block] of blocks.entries()) {
    const parsed = parsePublicKey(block)
    if (typeof parsed === 'string') return blocks.length === 1 ? parsed : `key ${i + 1} of ${blocks.length} ${parsed}`
    keys.push(parsed)
  }
  return keys
}

/** The algorithms a public key can verify. */
export function algorithmsForPublicKey (key: KeyObject): JwtAlgorithm[] {
  return algorithmsForKey(key)
}

function parsePublicKey (pem: string): KeyObject | string {
  if (/PRIVATE KEY/.test(pem)) return 'holds a private key; give the public key only'
  try {
    return createPublicKey(pem)
  } catch {
    return 'is not a PEM public key'
  }
}

function algorithmsForKey (key: KeyObject): JwtAlgorithm[] {
  switch (key.asymmetricKeyType) {
    case 'rsa': return rsaAlgorithms
    case 'rsa-pss': return pssAlgorithms
    case 'ec': {
      const algorithm = ecAlgorithmByCurve[key.asymmetricKeyDetails?.namedCurve ?? '']
      return algorithm === undefined ? [] : [algorithm]
    }
    case 'ed25519':
    case 'ed448':
      return ['EdDSA']
    default:
      return []
  }
}

function readAlgorithms (read: EnvReader, allowed: JwtAlgorithm[]): JwtAlgorithm[] {
  const requested = read.list('JWT_ALGORITHMS')
  if (allowed.length === 0) {
    read.problem('JWT_PUBLIC_KEY', 'has a key type that cannot verify JWTs (use RSA, EC P-256/384/521 or Ed25519/Ed448)')
    return []
  }
  if (requested.length === 0) return allowed
  const refused = requested.filter(name => !allowed.some(candidate => candidate === name))
  if (refused.length > 0) {
    const none = refused.some(name => name.toLowerCase() === 'none')
    read.problem('JWT_ALGORITHMS', `${none ? '"none" is never allowed; ' : ''}allowed for this key: ${allowed.join(', ')}; not allowed: ${refused.join(', ')}`)
    return allowed
  }
  return allowed.filter(candidate => requested.includes(candidate))
}

function readCookieName (read: EnvReader): string | undefined {
  const value = read.raw('JWT_COOKIE')
  if (value !== undefined && !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(value)) {
    read.problem('JWT_COOKIE', `must be a valid cookie name, got "${value}"`)
    return undefined
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

/**
 * REDIS_URL (redis://, rediss://, or the sentinel form), or the sentinel URL that REDIS_SENTINELS and
 * REDIS_SENTINEL_MASTER make, REDIS_URL then giving only credentials, TLS and database (see
 * redis/redis-options.ts). Sentinel problems never quote the URL: it may hold a password.
 */
function readRedisUrl (read: EnvReader): string | undefined {
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

function readCorsOrigins (read: EnvReader): string[] {
  const origins = read.list('CORS_ORIGINS')
  const bad = origins.filter(origin => !URL.canParse(origin) || new URL(origin).origin !== origin)
  if (bad.length > 0) {
    read.problem('CORS_ORIGINS', `must be a comma list of exact origins such as https://app.example.com (no path, no trailing slash, no "*"); not valid: ${bad.join(', ')}`)
    return []
  }
  return origins
}
