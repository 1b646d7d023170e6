import { hash } from 'node:crypto'
import { setWithinLimit } from '../bounded-map.js'
import type { SessionContext } from './session-context.js'

/**
 * Session JWTs that passed every check, remembered by their exact text until their `exp`. A browser
 * sends the same JWT on every page load, and checking it again (shape, signature, claims) was most of
 * the cost of a token-cache hit. What the service derives from the claims (SessionContext) is kept with
 * them, so it too is worked out once per token.
 *
 * Only an exact repeat of a token that was fully verified is served from here: the key is the token's
 * SHA-256, so a changed byte is a different key (and an entry keeps 43 characters, not the whole token
 * and the header string it was cut from). Bounded; when full, the oldest entry goes (first in, first
 * out: an entry costs no write on a hit, and a token that is still in use is simply verified once more).
 */
export class VerifiedSessionCache {
  /** Token hash → context, whose claims' `exp` (required and numeric, see remember) says until when. */
  readonly #entries = new Map<string, SessionContext>()
  readonly #maxEntries: number
  readonly #now: () => number

  constructor (maxEntries: number, now: () => number = Date.now) {
    this.#maxEntries = maxEntries
    this.#now = now
  }

  get size (): number {
    return this.#entries.size
  }

  /** The context of a remembered token, and the key to remember it under when it is not (hashed once). */
  lookup (token: string): { key: string; context: SessionContext | undefined } {
    const key = hash('sha256', token, 'base64url')
    const context = this.#entries.get(key)
    if (context === undefined) return { key, context }
    // At exp the token goes back through the verifier, which applies the clock tolerance and decides.
    if (this.#now() >= (context.claims.exp as number) * 1000) {
      this.#entries.delete(key)
      return { key, context: undefined }
    }
    return { key, context }
  }

  /** Forgets every token: after a key rotation each is verified again with the keys that remain. */
  clear (): void {
    this.#entries.clear()
  }

  /** Remembers the (immutable) context: it is shared by every later request that sends this token. */
  remember (key: string, context: SessionContext): SessionContext {
    const exp = context.claims.exp
    // The verifier requires a numeric exp; anything else is simply not remembered.
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return context
    setWithinLimit(this.#entries, key, context, this.#maxEntries)
    return context
  }
}
