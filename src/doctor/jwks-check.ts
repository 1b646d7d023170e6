import { type Dispatcher, request } from 'undici'
import { publicKeyFromJwk } from '../auth/jwks-key-store.js'
import type { Config } from '../config/types.js'
import { readBodyText } from '../http/upstream-body.js'
import { parseJsonObject } from '../json-object.js'
import { checkResult, type CheckResult, elapsedMs } from './check.js'
import { connectionProblem, errorCode } from './network-errors.js'

const NAME = 'jwks'
const TIMEOUT_MS = 3000

/** Fetches JWT_JWKS_URL as the service will: how many keys, which of them it can use, for which algorithms. */
export async function checkJwks (config: Config, dispatcher: Dispatcher): Promise<CheckResult> {
  const key = config.jwt.key
  if (key.kind !== 'jwks') return checkResult(NAME, 'skip', `no JWT_JWKS_URL: sessions are verified with ${key.kind === 'secret' ? 'JWT_SECRET' : 'JWT_PUBLIC_KEY'}`)
  const url = new URL(key.url)
  const startedAt = performance.now()
  let status: number
  let text: string
  try {
    const response = await request(url, { method: 'GET', dispatcher, headers: { accept: 'application/json' }, signal: AbortSignal.timeout(TIMEOUT_MS) })
    status = response.statusCode
    text = await readBodyText(response.body, 256 * 1024)
  } catch (error) {
    const code = errorCode(error)
    return checkResult(NAME, 'fail', `the JWKS cannot be fetched: ${connectionProblem(code, url, 'JWT_JWKS_URL', TIMEOUT_MS)}`, [], { code })
  }
  const ms = elapsedMs(startedAt)
  if (status !== 200) return checkResult(NAME, 'fail', `the JWKS at ${url.origin}${url.pathname} answered ${status}`, ['Check JWT_JWKS_URL.'], { status, ms })
  const keys = parseJsonObject(text)?.keys
  if (!Array.isArray(keys)) return checkResult(NAME, 'fail', 'the JWKS answer has no "keys" array', ['Check that JWT_JWKS_URL is the JWKS itself (often /.well-known/jwks.json), not the discovery document.'], { status, ms })

  const found = (keys as unknown[]).map(jwk => {
    const fields = (typeof jwk === 'object' && jwk !== null ? jwk : {}) as Record<string, unknown>
    return {
      kid: typeof fields.kid === 'string' ? fields.kid : undefined,
      kty: typeof fields.kty === 'string' ? fields.kty : undefined,
      alg: typeof fields.alg === 'string' ? fields.alg : undefined,
      usable: publicKeyFromJwk(jwk) !== undefined
    }
  })
  const usable = found.filter(entry => entry.usable)
  const algorithms = [...new Set(usable.map(entry => entry.alg ?? `any ${entry.kty ?? '?'} algorithm`))]
  const facts = { status, ms, keys: found.length, usable: usable.length, algorithms, kids: usable.map(entry => entry.kid) }
  if (usable.length === 0) {
    return checkResult(NAME, 'fail', `the JWKS holds ${found.length} key(s), none a public signing key the service can use`, ['Only RSA, EC and OKP public keys with "use" absent or "sig" are used.'], facts)
  }
  const details: string[] = []
  const allowed = new Set<string>(config.jwt.algorithms)
  const outside = usable.filter(entry => entry.alg !== undefined && !allowed.has(entry.alg))
  if (outside.length > 0) details.push(`Key(s) ${outside.map(entry => `"${entry.kid ?? ''}" (${entry.alg})`).join(', ')} use an algorithm outside JWT_ALGORITHMS (${config.jwt.algorithms.join(', ')}): tokens signed with them are refused.`)
  if (usable.length > 1 && usable.some(entry => entry.kid === undefined)) details.push('Some keys have no "kid": with more than one key, tokens without a kid are refused.')
  return checkResult(NAME, details.length === 0 ? 'ok' : 'warn', `fetched in ${ms} ms: ${found.length} key(s), ${usable.length} usable, for ${algorithms.join(', ')}`, details, facts)
}
