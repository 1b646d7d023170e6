/**
 * HubSpot's daily API limit resets at midnight in the account's time zone (a portal setting,
 * HUBSPOT_ACCOUNT_TIME_ZONE), not in UTC. Days there are not always 24 hours long: 23 or 25 around a
 * daylight-saving change, and some zones skip midnight itself (America/Santiago moves 00:00 to 01:00)
 * or, as Pacific/Apia did in 2011, a whole date. So the next reset is found as the first instant whose
 * local date is a later one, which holds in every case, rather than by adding hours to an offset.
 */

/** No day is this long, so a later date is always found within it (the longest are 25 or 26 hours). */
const SEARCH_SPAN_MS = 48 * 60 * 60 * 1000

export class AccountDay {
  readonly timeZone: string
  readonly #format: Intl.DateTimeFormat
  /** The last day worked out: its date, an instant known to lie in it, and its end. */
  #cached: { date: string; from: number; end: number } | undefined

  constructor (timeZone: string) {
    this.timeZone = timeZone
    this.#format = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' })
  }

  /** The account's calendar date at `now`, as `YYYY-MM-DD`. */
  dateAt (now: number): string {
    return this.#day(now).date
  }

  /** The first instant after `now` that lies in the account's next calendar day: when the daily limit resets. */
  nextReset (now: number): number {
    return this.#day(now).end
  }

  msUntilReset (now: number): number {
    return this.nextReset(now) - now
  }

  #day (now: number): { date: string; end: number } {
    const cached = this.#cached
    if (cached !== undefined && now >= cached.from && now < cached.end) return cached
    const from = Math.floor(now)
    const date = this.#dateOf(from)
    // The local date never goes backwards as time runs forward, so the first instant of a later date
    // is found by bisection to the millisecond: about 28 formats, once per day and zone.
    let inDay = from
    let later = from + SEARCH_SPAN_MS
    while (later - inDay > 1) {
      const middle = Math.floor((inDay + later) / 2)
      if (this.#dateOf(middle) > date) later = middle
      else inDay = middle
    }
    this.#cached = { date, from, end: later }
    return this.#cached
  }

  #dateOf (at: number): string {
    let year = ''
    let month = ''
    let day = ''
    for (const part of this.#format.formatToParts(at)) {
      if (part.type === 'year') year = part.value
      else if (part.type === 'month') month = part.value
      else if (part.type === 'day') day = part.value
    }
    return `${year.padStart(4, '0')}-${month}-${day}`
  }
}
