import type { SessionClaims } from './identity.js'

/**
 * Session JWTs that passed every check, remembered by their exact text until their `exp`. A browser
 * sends the same JWT on every page load, and checking it again (shape, signature, claims) was most of
 * the cost of a token-cache hit. The same frozen claims object comes back every time, so callers can
 * memoise what they derive from it in a WeakMap that empties itself when the entry goes.
 *
 * Only an exact repeat of a token that was fully verified is served from here: a changed byte is a
 * different key. Bounded; when full, the oldest entry goes (first in, first out: an entry costs no
 * write on a hit, and a token that is still in use is simply verified once more).
 */
export class VerifiedSessionCache {
  readonly #entries = new Map<string, { claims: SessionClaims; expiresAtMs: number }>()
  readonly #maxEntries: number
  readonly #now: () => number

  constructor (maxEntries: number, now: () => number = Date.now) {
    this.#maxEntries = maxEntries
    this.#now = now
  }

  get size (): number {
    return this.#entries.size
  }

  claimsFor (token: string): SessionClaims | undefined {
    const entry = this.#entries.get(token)
    if (entry === undefined) return undefined
    // At exp the token goes back through the verifier, which applies the clock tolerance and decides.
    if (this.#now() >= entry.expiresAtMs) {
      this.#entries.delete(token)
      return undefined
    }
    return entry.claims
  }

  /** Returns the claims, frozen: they are shared by every later request that sends this token. */
  remember (token: string, claims: SessionClaims): SessionClaims {
    const frozen = Object.freeze(claims)
    const exp = claims.exp
    // The verifier requires a numeric exp; anything else is simply not remembered.
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return frozen
    this.#entries.set(token, { claims: frozen, expiresAtMs: exp * 1000 })
    if (this.#entries.size > this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!)
    return frozen
  }
}
