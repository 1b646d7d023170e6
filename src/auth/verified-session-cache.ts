import { hash } from 'node:crypto'
import type { SessionClaims } from './identity.js'

/**
 * Session JWTs that passed every check, remembered by their exact text until their `exp`. A browser
 * sends the same JWT on every page load, and checking it again (shape, signature, claims) was most of
 * the cost of a token-cache hit. The same frozen claims object comes back every time, so callers can
 * memoise what they derive from it in a WeakMap that empties itself when the entry goes.
 *
 * Only an exact repeat of a token that was fully verified is served from here: the key is the token's
 * SHA-256, so a changed byte is a different key (and an entry keeps 43 characters, not the whole token
 * and the header string it was cut from). Bounded; when full, the oldest entry goes (first in, first
 * out: an entry costs no write on a hit, and a token that is still in use is simply verified once more).
 */
export class VerifiedSessionCache {
  /** Token hash → claims, whose `exp` (required and numeric, see remember) says until when. */
  readonly #entries = new Map<string, SessionClaims>()
  readonly #maxEntries: number
  readonly #now: () => number

  constructor (maxEntries: number, now: () => number = Date.now) {
    this.#maxEntries = maxEntries
    this.#now = now
  }

  get size (): number {
    return this.#entries.size
  }

  /** The claims of a remembered token, and the key to remember it under when it is not (hashed once). */
  lookup (token: string): { key: string; claims: SessionClaims | undefined } {
    const key = hash('sha256', token, 'base64url')
    const claims = this.#entries.get(key)
    if (claims === undefined) return { key, claims }
    // At exp the token goes back through the verifier, which applies the clock tolerance and decides.
    if (this.#now() >= (claims.exp as number) * 1000) {
      this.#entries.delete(key)
      return { key, claims: undefined }
    }
    return { key, claims }
  }

  /** Forgets every token: after a key rotation each is verified again with the keys that remain. */
  clear (): void {
    this.#entries.clear()
  }

  /** Returns the claims, frozen: they are shared by every later request that sends this token. */
  remember (key: string, claims: SessionClaims): SessionClaims {
    const frozen = Object.freeze(claims)
    const exp = claims.exp
    // The verifier requires a numeric exp; anything else is simply not remembered.
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return frozen
    this.#entries.set(key, frozen)
    if (this.#entries.size > this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!)
    return frozen
  }
}
