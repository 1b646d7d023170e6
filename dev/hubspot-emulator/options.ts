import type { EmulatorOptions, RateLimitOptions, ResolvedOptions } from './types.js'
import { InvalidInputError, isNonNegativeInteger, isRecord, isStringArray, unknownKeys } from './validate.js'

export const REQUIRED_SCOPE = 'conversations.visitor_identification.tokens.create'

export const DEFAULT_OPTIONS: Readonly<ResolvedOptions> = Object.freeze({
  port: 0,
  host: '127.0.0.1',
  accessTokens: ['emulator-access-token'],
  scopes: [REQUIRED_SCOPE],
  tierAllowed: true,
  latencyMs: 0,
  rateLimit: { max: 100, intervalMs: 10_000 },
  dailyLimit: 250_000,
  retryAfterOn429: false
})

const OPTION_KEYS = [
  'port', 'host', 'accessTokens', 'scopes', 'tierAllowed', 'latencyMs', 'rateLimit', 'dailyLimit', 'retryAfterOn429'
] as const

/** Checks an untrusted options object (control API body or programmatic input) and returns a clean copy. */
export function parseOptions (input: unknown): EmulatorOptions {
  if (!isRecord(input)) throw new InvalidInputError('options', ['expected a JSON object'])
  const problems = unknownKeys(input, OPTION_KEYS).map((key) => `unknown option "${key}"`)
  const out: EmulatorOptions = {}
  const { port, host, accessTokens, scopes, tierAllowed, latencyMs, rateLimit, dailyLimit, retryAfterOn429 } = input

  if (port !== undefined) {
    if (isNonNegativeInteger(port) && port <= 65_535) out.port = port
    else problems.push('port must be an integer from 0 to 65535')
  }
  if (host !== undefined) {
    if (typeof host === 'string' && host.length > 0) out.host = host
    else problems.push('host must be a non-empty string')
  }
  if (accessTokens !== undefined) {
    if (isStringArray(accessTokens) && accessTokens.every((token) => token.length > 0)) out.accessTokens = [...accessTokens]
    else problems.push('accessTokens must be an array of non-empty strings')
  }
  if (scopes !== undefined) {
    if (isStringArray(scopes)) out.scopes = [...scopes]
    else problems.push('scopes must be an array of strings')
  }
  if (tierAllowed !== undefined) {
    if (typeof tierAllowed === 'boolean') out.tierAllowed = tierAllowed
    else problems.push('tierAllowed must be a boolean')
  }
  if (latencyMs !== undefined) {
    if (isNonNegativeInteger(latencyMs)) out.latencyMs = latencyMs
    else problems.push('latencyMs must be a non-negative integer')
  }
  if (rateLimit !== undefined) {
    const parsed = parseRateLimit(rateLimit)
    if (parsed) out.rateLimit = parsed
    else problems.push('rateLimit must be { max: integer >= 0, intervalMs: integer >= 1 }')
  }
  if (dailyLimit !== undefined) {
    if (isNonNegativeInteger(dailyLimit)) out.dailyLimit = dailyLimit
    else problems.push('dailyLimit must be a non-negative integer')
  }
  if (retryAfterOn429 !== undefined) {
    if (typeof retryAfterOn429 === 'boolean') out.retryAfterOn429 = retryAfterOn429
    else problems.push('retryAfterOn429 must be a boolean')
  }

  if (problems.length > 0) throw new InvalidInputError('options', problems)
  return out
}

function parseRateLimit (value: unknown): RateLimitOptions | undefined {
  if (!isRecord(value) || unknownKeys(value, ['max', 'intervalMs']).length > 0) return undefined
  const { max, intervalMs } = value
  if (!isNonNegativeInteger(max) || !isNonNegativeInteger(intervalMs) || intervalMs < 1) return undefined
  return { max, intervalMs }
}

export function resolveOptions (options: EmulatorOptions = {}): ResolvedOptions {
  return withOptions(DEFAULT_OPTIONS, parseOptions(options))
}

/**
 * Applies a runtime change. The listening address is fixed once the server is up,
 * so a patch may repeat the current port/host but not change them.
 */
export function reconfigure (current: ResolvedOptions, patch: unknown): ResolvedOptions {
  const parsed = parseOptions(patch)
  const problems: string[] = []
  if (parsed.port !== undefined && parsed.port !== current.port) problems.push('port cannot change at runtime')
  if (parsed.host !== undefined && parsed.host !== current.host) problems.push('host cannot change at runtime')
  if (problems.length > 0) throw new InvalidInputError('options', problems)
  return withOptions(current, parsed)
}

function withOptions (base: Readonly<ResolvedOptions>, patch: EmulatorOptions): ResolvedOptions {
  return {
    port: patch.port ?? base.port,
    host: patch.host ?? base.host,
    accessTokens: [...(patch.accessTokens ?? base.accessTokens)],
    scopes: [...(patch.scopes ?? base.scopes)],
    tierAllowed: patch.tierAllowed ?? base.tierAllowed,
    latencyMs: patch.latencyMs ?? base.latencyMs,
    rateLimit: { ...(patch.rateLimit ?? base.rateLimit) },
    dailyLimit: patch.dailyLimit ?? base.dailyLimit,
    retryAfterOn429: patch.retryAfterOn429 ?? base.retryAfterOn429
  }
}
