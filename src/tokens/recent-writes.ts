import { setWithinLimit } from '../bounded-map.js'
import type { Clock } from '../deadline.js'

/**
 * Writes a Redis master acknowledged shortly before it went away, kept to be sent again once Redis is
 * back: a master's last writes may never reach the replica that takes its place. A crash loses what was
 * not yet replicated, and in a Sentinel failover the old master takes writes until it is demoted (which
 * cuts our connection). Only writes that are safe to repeat belong here.
 */
export class RecentWrites<T> {
  /** key → what to send again and when it was acknowledged; in that order, oldest first. */
  readonly #entries = new Map<string, { value: T; at: number }>()
  readonly #keepMs: number
  readonly #maxEntries: number
  readonly #clock: Clock

  constructor (options: { keepMs: number; maxEntries: number; clock: Clock }) {
    this.#keepMs = options.keepMs
    this.#maxEntries = options.maxEntries
    this.#clock = options.clock
  }

  add (key: string, value: T): void {
    const now = this.#clock.now()
    // Taken out first, so that the map stays in the order of acknowledgement.
    this.#entries.delete(key)
    setWithinLimit(this.#entries, key, { value, at: now }, this.#maxEntries)
    for (const [oldest, entry] of this.#entries) {
      if (entry.at >= now - this.#keepMs) break
      this.#entries.delete(oldest)
    }
  }

  /**
   * Those acknowledged at or after `from`, oldest first. Entries leave only as newer ones are added, so
   * the last ones before Redis went away are still here when it comes back, however long that took.
   */
  since (from: number): Array<[key: string, value: T]> {
    return [...this.#entries].filter(([, entry]) => entry.at >= from).map(([key, entry]) => [key, entry.value])
  }
}
