const SPAN_S = 10

/**
 * The least time the budget's answers took over the last ten seconds: the round trip to Redis, which
 * every answer carries and no second ask removes. A caller judged late by that much only because its
 * answer had to come back would ask again, be late again by the same round trip, and never call.
 *
 * A stalled event loop also makes answers late, but only for a moment: it does not raise the least of
 * ten seconds of answers, so a caller held up by a stall still confirms again, as before. The floor is
 * capped (at what the window's margin leaves beside the tolerance): lateness beyond the margin could
 * put one call too many into HubSpot's window whatever its cause. An in-process budget's floor is 0.
 */
export class RoundTripFloor {
  /** The least answer time seen in each of the last seconds, oldest first. */
  readonly #leastBySecond: Array<{ second: number; ms: number }> = []

  constructor (private readonly capMs: number) {}

  record (ms: number, now: number): void {
    const second = Math.floor(now / 1000)
    const last = this.#leastBySecond.at(-1)
    if (last?.second === second) last.ms = Math.min(last.ms, ms)
    else this.#leastBySecond.push({ second, ms })
    this.#forget(second)
  }

  /** The extra lateness a caller may have for its answer's round trip: 0 until an answer was timed. */
  ms (now: number): number {
    this.#forget(Math.floor(now / 1000))
    let least = Infinity
    for (const entry of this.#leastBySecond) least = Math.min(least, entry.ms)
    return least === Infinity ? 0 : Math.min(this.capMs, Math.max(0, least))
  }

  #forget (second: number): void {
    let stale = 0
    while (stale < this.#leastBySecond.length && this.#leastBySecond[stale]!.second <= second - SPAN_S) stale++
    if (stale > 0) this.#leastBySecond.splice(0, stale)
  }
}
