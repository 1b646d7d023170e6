import type { ReadinessCheck } from '../readiness.js'

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
