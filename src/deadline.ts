/** Time is an input: everything with deadlines, TTLs or backoff takes a Clock so tests can move it. */
export interface Clock {
  now: () => number
}

export const systemClock: Clock = { now: Date.now }

/**
 * One request's budget for upstream work. `signal` aborts when the budget is spent, so a single timer
 * covers connecting, retries, backoff sleeps and reading bodies. The timer is an unref'd setTimeout that
 * `dispose()` clears once nothing waits any more: AbortSignal.timeout() keeps its timer (and a weak
 * reference) alive until it fires, and cost three times as much per cache miss.
 */
export class Deadline {
  readonly expiresAt: number
  private readonly clock: Clock
  private readonly controller = new AbortController()
  private readonly timer: NodeJS.Timeout

  constructor (budgetMs: number, clock: Clock = systemClock) {
    this.clock = clock
    this.expiresAt = clock.now() + budgetMs
    this.timer = setTimeout(() => {
      this.controller.abort(new DOMException('The deadline passed', 'TimeoutError'))
    }, budgetMs)
    this.timer.unref()
  }

  get signal (): AbortSignal {
    return this.controller.signal
  }

  remainingMs (): number {
    return Math.max(0, this.expiresAt - this.clock.now())
  }

  get expired (): boolean {
    return this.controller.signal.aborted || this.remainingMs() === 0
  }

  /** Stops the timer; the deadline must no longer be waited on. Safe to call more than once. */
  dispose (): void {
    clearTimeout(this.timer)
  }
}
