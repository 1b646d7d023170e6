import { setWithinLimit } from '../bounded-map.js'

/**
 * Fixed-window request counters per caller, in process memory (memory mode, or while Redis is
 * unusable). A login storm brings a new caller per request, so each caller is one number: the end of
 * its window (ms after `base`) times COUNT_SPAN, plus its count. A `{ current, resetAt }` object per
 * caller held ~4 MB more heap for the 100,000 callers of one such minute.
 */

/** Counts stop at max + 1, all the limit needs (RATE_LIMIT_MAX is at most 1,000,000), and below this. */
const COUNT_SPAN = 2 ** 20

/**
 * Window ends are kept relative to `base`, moved forward (every entry re-encoded) once it is this far
 * behind: an end then lies less than 2^32 ms plus one window (at most a day) after `base`, so the packed
 * number stays below 2^53 and exact.
 */
const REBASE_AFTER_MS = 2 ** 32

/** Beyond this many callers the oldest window is dropped. */
export const MAX_LOCAL_CALLERS = 100_000

export interface CallerCount {
  current: number
  /** Milliseconds until the caller's window ends. */
  ttl: number
}

export class LocalCallerCounters {
  readonly #entries = new Map<string, number>()
  #base: number

  constructor (now: number) {
    this.#base = Math.floor(now)
  }

  get size (): number {
    return this.#entries.size
  }

  /** Counts one request by `key` at `now` in a window of `windowMs` that starts with its first request. */
  increment (key: string, windowMs: number, max: number, now: number): CallerCount {
    this.#dropFinished(now)
    if (now - this.#base > REBASE_AFTER_MS) this.#rebase(now)
    const packed = this.#entries.get(key)
    if (packed === undefined) {
      const endsAt = Math.ceil(now - this.#base + windowMs)
      setWithinLimit(this.#entries, key, endsAt * COUNT_SPAN + 1, MAX_LOCAL_CALLERS)
      return { current: 1, ttl: this.#base + endsAt - now }
    }
    const endsAt = Math.floor(packed / COUNT_SPAN)
    const current = Math.min(packed - endsAt * COUNT_SPAN + 1, max + 1, COUNT_SPAN - 1)
    // set() on a present key keeps its place, so the Map stays in the order the windows end.
    this.#entries.set(key, endsAt * COUNT_SPAN + current)
    return { current, ttl: this.#base + endsAt - now }
  }

  /** Windows are inserted when they start, so the Map is in the order they end: drop the finished ones. */
  #dropFinished (now: number): void {
    for (const [key, packed] of this.#entries) {
      if (this.#base + Math.floor(packed / COUNT_SPAN) > now) return
      this.#entries.delete(key)
    }
  }

  /** Only unfinished windows remain (they end after `now`), so every re-encoded end is positive. */
  #rebase (now: number): void {
    const shift = Math.floor(now - this.#base)
    for (const [key, packed] of this.#entries) {
      const endsAt = Math.floor(packed / COUNT_SPAN)
      this.#entries.set(key, (endsAt - shift) * COUNT_SPAN + (packed - endsAt * COUNT_SPAN))
    }
    this.#base += shift
  }
}
