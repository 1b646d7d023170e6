import { createPublicKey, type KeyObject } from 'node:crypto'
import { type EnvReader, ordinal, readSecret, secretList } from './env-reader.js'
import type { ConfigWarning, JwtAlgorithm, JwtConfig, JwtKeySource } from './types.js'
import type { UpstreamUrlCheck } from './upstream-url.js'

/** JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL, and the settings that go with the key. */

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

export interface JwtReadContext {
  demo: boolean
  upstreamUrl: UpstreamUrlCheck
  warnings: ConfigWarning[]
}

export function readJwt (read: EnvReader, readFile: (path: string) => string, context: JwtReadContext): JwtConfig {
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
