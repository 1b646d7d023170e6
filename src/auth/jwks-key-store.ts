import { createPublicKey, type JsonWebKey } from 'node:crypto'
import { request } from 'undici'
import { type Clock, systemClock } from '../deadline.js'
import { ServiceError } from '../errors.js'
import { readBodyText } from '../http/upstream-body.js'
import { parseJsonObject } from '../json-object.js'
import type { ReadinessCheck } from '../readiness.js'

/**
 * Public keys from a JWKS endpoint, by `kid`. The whole set is cached; an unknown `kid` refetches it at
 * most once per cooldown, so a flood of junk `kid`s costs the JWKS host one request per cooldown.
 * (get-jwks was considered: it refetches per unknown kid with no cooldown and its fetch has no timeout.)
 */
export interface JwksKeyStoreOptions {
  url: string
  cooldownMs: number
  /** Known keys are refreshed in the background of a lookup after this long, to notice revocations. */
  refreshAfterMs?: number
  timeoutMs?: number
  clock?: Clock
  /** Told what each fetch met, for readiness. */
  onFetch?: (outcome: { ok: true } | { ok: false; error: string }) => void
}

const MAX_JWKS_BYTES = 256 * 1024
const MAX_KID_LENGTH = 256

interface PublicJwk {
  pem: string
  alg: string | undefined
}

export class JwksKeyStore {
  private keys = new Map<string, PublicJwk>()
  private fetchedAt = Number.NEGATIVE_INFINITY
  private attemptedAt = Number.NEGATIVE_INFINITY
  private inFlight: Promise<void> | undefined
  private readonly clock: Clock
  private readonly refreshAfterMs: number
  private readonly timeoutMs: number

  constructor (private readonly options: JwksKeyStoreOptions) {
    this.clock = options.clock ?? systemClock
    this.refreshAfterMs = options.refreshAfterMs ?? 10 * 60_000
    this.timeoutMs = options.timeoutMs ?? 3000
  }

  /** The PEM public key for a token header, or a ServiceError (invalid_token, or upstream_unavailable while the set cannot be had). */
  async keyFor (kid: unknown, alg: unknown): Promise<string> {
    if (kid !== undefined && (typeof kid !== 'string' || kid.length === 0 || kid.length > MAX_KID_LENGTH)) {
      throw new ServiceError('invalid_token', 'The session token names an unusable key id')
    }
    const now = this.clock.now()
    if (this.keys.size === 0 || now - this.fetchedAt > this.refreshAfterMs) {
      await this.refreshIfAllowed(now)
    }
    let key = this.find(kid)
    if (key === undefined && this.keys.size > 0) {
      await this.refreshIfAllowed(now)
      key = this.find(kid)
    }
    if (key === undefined) {
      if (this.keys.size === 0) throw new ServiceError('upstream_unavailable', 'The session signing keys cannot be fetched', { retryAfterS: this.options.cooldownMs / 1000 })
      throw new ServiceError('invalid_token', 'The session token is signed with an unknown key')
    }
    if (key.alg !== undefined && key.alg !== alg) {
      throw new ServiceError('invalid_token', 'The session token\'s algorithm does not match its key')
    }
    return key.pem
  }

  private find (kid: string | undefined): PublicJwk | undefined {
    if (kid !== undefined) return this.keys.get(kid)
    // A token without kid is accepted only when the set leaves no doubt which key is meant.
    return this.keys.size === 1 ? this.keys.values().next().value : undefined
  }

  private async refreshIfAllowed (now: number): Promise<void> {
    if (this.inFlight !== undefined) return this.inFlight
    if (now - this.attemptedAt < this.options.cooldownMs) return
    this.attemptedAt = now
    this.inFlight = this.fetchKeys()
      .then(keys => {
        this.keys = keys
        this.fetchedAt = this.clock.now()
        this.options.onFetch?.({ ok: true })
      })
      // A failed refresh keeps the keys we had: a JWKS outage must not log everybody out.
      .catch((error: unknown) => {
        this.options.onFetch?.({ ok: false, error: error instanceof Error ? error.message : String(error) })
      })
      .finally(() => { this.inFlight = undefined })
    return this.inFlight
  }

  private async fetchKeys (): Promise<Map<string, PublicJwk>> {
    const response = await request(this.options.url, {
      method: 'GET',
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(this.timeoutMs)
    })
    const text = await readBodyText(response.body, MAX_JWKS_BYTES)
    if (response.statusCode !== 200) throw new Error(`JWKS answered ${response.statusCode}`)
    const keys = parseJsonObject(text)?.keys
    if (!Array.isArray(keys)) throw new Error('JWKS has no keys array')
    const usable = new Map<string, PublicJwk>()
    for (const jwk of keys as unknown[]) {
      const key = publicKeyFromJwk(jwk)
      if (key !== undefined) usable.set(key.kid, key)
    }
    if (usable.size === 0) throw new Error('JWKS has no usable public signing key')
    return usable
  }
}

/** The public signing key a JWK holds, or undefined when it holds none usable here. */
export function publicKeyFromJwk (value: unknown): (PublicJwk & { kid: string }) | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const jwk = value as Record<string, unknown>
  // Symmetric keys never belong in a JWKS we verify with; encryption keys are not for signatures.
  if (!['RSA', 'EC', 'OKP'].includes(jwk.kty as string) || (jwk.use !== undefined && jwk.use !== 'sig')) return undefined
  const kid = typeof jwk.kid === 'string' ? jwk.kid : ''
  try {
    const { d: _private, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicPart } = jwk
    const pem = createPublicKey({ key: publicPart as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString()
    return { kid, pem, alg: typeof jwk.alg === 'string' ? jwk.alg : undefined }
  } catch {
    return undefined
  }
}

/**
 * What the last JWKS fetch met, for /readyz: `ok`, `failed` (the keys fetched before stay in use, so
 * sessions signed with them still verify), or `unknown` before the first fetch (the first session
 * request makes it). Nothing is fetched for a probe.
 */
export class JwksHealth {
  #last: { ok: true } | { ok: false; error: string } | undefined

  fetched (outcome: { ok: true } | { ok: false; error: string }): void {
    this.#last = outcome
  }

  readonly check: ReadinessCheck = () => {
    if (this.#last === undefined) return 'unknown'
    if (this.#last.ok) return 'ok'
    return { status: 'failed', reason: `the last JWKS fetch failed (${this.#last.error}): keys fetched before stay in use` }
  }
}
