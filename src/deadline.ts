/** Time is an input: everything with deadlines, TTLs or backoff takes a Clock so tests can move it. */
export interface Clock {
  now: () => number
}

export const systemClock: Clock = { now: Date.now }

/**
 * One request's budget for upstream work. `signal` aborts when the budget is spent, so a single timer
 * covers connecting, retries, backoff sleeps and reading bodies.
 */
export class Deadline {
  readonly expiresAt: number
  readonly signal: AbortSignal
  private readonly clock: Clock

  constructor (budgetMs: number, clock: Clock = systemClock) {
    this.clock = clock
    this.expiresAt = clock.now() + budgetMs
    this.signal = AbortSignal.timeout(budgetMs)
  }

  remainingMs (): number {
    return Math.max(0, this.expiresAt - this.clock.now())
  }

  get expired (): boolean {
    return this.signal.aborted || this.remainingMs() === 0
  }
}
