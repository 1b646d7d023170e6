/**
 * `ok`, `unknown` (nothing seen yet, so nothing known to be wrong), or a word for what is wrong
 * (`degraded`, `credentials_refused`, `unavailable`, `failed`...). Only `shutdown` ever decides readiness.
 */
export type CheckStatus = string

/**
 * A status, or a status and why (shown under `reasons` beside `checks`). A check reports what requests
 * already met: a readiness probe never calls a dependency.
 */
export type ReadinessCheck = () => CheckStatus | { status: CheckStatus; reason: string }

/** The named checks /readyz reports, added by each stage that has a dependency to report on. */
export class ReadinessChecks {
  readonly #checks = new Map<string, ReadinessCheck>()

  add (name: string, check: ReadinessCheck): void {
    if (this.#checks.has(name)) throw new Error(`readiness check "${name}" is added twice`)
    this.#checks.set(name, check)
  }

  entries (): IterableIterator<[string, ReadinessCheck]> {
    return this.#checks.entries()
  }
}
