/**
 * The service's whole configuration as loadConfig (load-config.ts) returns it: read from environment
 * variables once at start-up, every value checked.
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

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = typeof LOG_LEVELS[number]
