const DAY_MS = 86_400_000

/**
 * Sliding-log window: a request counts while `now - at < intervalMs`.
 * Every method takes `now` so tests can drive time directly.
 */
export class RollingWindow {
  #log: number[] = []
  #maxInWindow = 0

  count (now: number, intervalMs: number): number {
    this.#prune(now, intervalMs)
    return this.#log.length
  }

  /** Records an accepted request and returns how many are now in the window. */
  add (now: number, intervalMs: number): number {
    this.#prune(now, intervalMs)
    this.#log.push(now)
    // The busiest window always ends on an accepted request, so checking here sees every maximum.
    this.#maxInWindow = Math.max(this.#maxInWindow, this.#log.length)
    return this.#log.length
  }

  /** Time until the window holds fewer than `max` requests (0 if it already does). */
  msUntilBelow (now: number, intervalMs: number, max: number): number {
    this.#prune(now, intervalMs)
    const excess = this.#log.length - max
    if (excess < 0) return 0
    const freeing = this.#log[excess]
    return freeing === undefined ? 0 : freeing + intervalMs - now
  }

  get maxInWindow (): number {
    return this.#maxInWindow
  }

  #prune (now: number, intervalMs: number): void {
    let expired = 0
    while (expired < this.#log.length && now - this.#log[expired]! >= intervalMs) expired += 1
    if (expired > 0) this.#log.splice(0, expired)
  }
}

/** Counts requests per UTC day; HubSpot resets at midnight in the portal's time zone, UTC stands in for it. */
export class DailyCounter {
  #day = -1
  #count = 0

  count (now: number): number {
    this.#roll(now)
    return this.#count
  }

  add (now: number): number {
    this.#roll(now)
    this.#count += 1
    return this.#count
  }

  msUntilReset (now: number): number {
    return DAY_MS - (now % DAY_MS)
  }

  #roll (now: number): void {
    const day = Math.floor(now / DAY_MS)
    if (day !== this.#day) {
      this.#day = day
      this.#count = 0
    }
  }
}
