import { setTimeout as sleep } from 'node:timers/promises'
import type { RateBudget } from '../config.js'
import type { Clock, Deadline } from '../deadline.js'
import { ServiceError } from '../errors.js'
import type { TokenEvents } from './token-events.js'

/**
 * The outbound HubSpot budget, enforced as a rolling window (sliding log) like HubSpot's own: at no
 * moment may the last `windowMs` hold more than `max` calls. A fixed window or a token bucket lets up to
 * twice the budget through across a boundary, which is exactly what earns 429s.
 *
 * Callers *reserve* the earliest moment at which one more call keeps every window within the budget,
 * then sleep until it. Compared with polling "is there a slot now?", reservations queue callers
 * first-come first-served, wake each at a distinct moment (no herd), cost one budget operation per call,
 * and tell at once whether the slot comes before the caller's deadline.
 *
 * A caller that wakes late (a busy event loop, a GC pause) would send later than its slot says, so
 * HubSpot could see it in the same window as calls reserved a window after it. Such a caller
 * *confirms* first: its entry moves to the actual moment and it goes only if that window still has
 * room; otherwise it queues again. On-time callers skip the confirmation when they did not sleep.
 */
export interface Reservation {
  granted: boolean
  /** How long to wait before calling (granted), or how long until a slot would be free (refused). */
  waitMs: number
  /** Names the reservation for `confirm`. */
  ticket: string
}

export interface OutboundBudget {
  /** Reserves a slot at most `maxWaitMs` from now, or refuses without reserving. */
  reserve: (maxWaitMs: number) => Promise<Reservation>
  /**
   * Moves the reservation to now and says whether the call may go: false when that would overfill the
   * window or a 429 pause is on (the reservation is then dropped and the caller reserves again).
   */
  confirm: (ticket: string) => Promise<boolean>
  /** HubSpot answered a ten-second 429: no one calls for `ms`. */
  pause: (ms: number) => Promise<void>
}

/** The stretch added to the window: see windowWithMarginMs. */
export function marginMs (windowMs: number): number {
  return Math.min(250, Math.ceil(windowMs / 10))
}

/**
 * HubSpot counts calls when they arrive, we count them when we decide to send them; the gap varies
 * (a new TLS connection, the network). Stretching our window by a margin keeps that jitter from ever
 * putting `max + 1` calls into one of HubSpot's windows.
 */
export function windowWithMarginMs (windowMs: number): number {
  return windowMs + marginMs(windowMs)
}

/**
 * The in-process sliding log: reservation times in ascending order (reservations are made at or after
 * the newest one; a confirmation re-inserts in order). Entries leave once a window behind.
 */
export class SlidingLog {
  readonly #times: number[] = []
  readonly #tickets: number[] = []
  readonly #windowMs: number
  #nextTicket = 0
  #pausedUntil = 0

  constructor (readonly max: number, windowMs: number) {
    this.#windowMs = windowMs
  }

  /** The earliest moment from `now` at which one more call keeps every window within `max`. */
  earliest (now: number): number {
    this.#prune(now)
    const size = this.#times.length
    let at = Math.max(now, this.#pausedUntil)
    if (size > 0) at = Math.max(at, this.#times[size - 1]!)
    // The max-th newest call must have left the window when the new one is made.
    if (size >= this.max) at = Math.max(at, this.#times[size - this.max]! + this.#windowMs)
    return at
  }

  reserve (now: number, maxWaitMs: number): Reservation {
    const at = this.earliest(now)
    const waitMs = at - now
    const ticket = this.#nextTicket++
    if (waitMs > maxWaitMs) return { granted: false, waitMs, ticket: String(ticket) }
    this.#times.push(at)
    this.#tickets.push(ticket)
    return { granted: true, waitMs, ticket: String(ticket) }
  }

  confirm (ticket: string, now: number): boolean {
    const index = this.#tickets.indexOf(Number(ticket))
    if (index !== -1) {
      this.#times.splice(index, 1)
      this.#tickets.splice(index, 1)
    }
    this.#prune(now)
    if (now < this.#pausedUntil) return false
    // Entries are all within the window now; those not after `now` are the ones it holds.
    let position = this.#times.length
    while (position > 0 && this.#times[position - 1]! > now) position--
    if (position >= this.max) return false
    this.#times.splice(position, 0, now)
    this.#tickets.splice(position, 0, Number(ticket))
    return true
  }

  pause (now: number, ms: number): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, now + ms)
  }

  pausedForMs (now: number): number {
    return Math.max(0, this.#pausedUntil - now)
  }

  #prune (now: number): void {
    let expired = 0
    while (expired < this.#times.length && this.#times[expired]! <= now - this.#windowMs) expired++
    if (expired === 0) return
    this.#times.splice(0, expired)
    this.#tickets.splice(0, expired)
  }
}

export function createMemoryBudget (budget: RateBudget, clock: Clock): OutboundBudget & { log: SlidingLog } {
  const log = new SlidingLog(budget.max, windowWithMarginMs(budget.windowMs))
  return {
    log,
    reserve: async maxWaitMs => log.reserve(clock.now(), maxWaitMs),
    confirm: async ticket => log.confirm(ticket, clock.now()),
    pause: async ms => log.pause(clock.now(), ms)
  }
}

export interface AcquireOptions {
  events: TokenEvents
  clock: Clock
  /** Time kept back from the deadline for the call itself: a slot later than that would only time out. */
  callHeadroomMs: number
  /** A caller this much later than its slot confirms before calling (half the window's margin). */
  lateToleranceMs: number
}

/**
 * Waits for a slot within the deadline, or refuses at once with 503 upstream_unavailable and a
 * Retry-After saying when a new request would get a slot in time.
 */
export async function acquireSlot (budget: OutboundBudget, deadline: Deadline, options: AcquireOptions): Promise<void> {
  const { clock, events } = options
  const startedAt = clock.now()
  for (;;) {
    const askedAt = clock.now()
    const maxWaitMs = Math.max(0, deadline.remainingMs() - options.callHeadroomMs)
    const reservation = await budget.reserve(maxWaitMs)
    if (!reservation.granted) {
      events.budgetRefused()
      // A request sent after this long would find its slot within its own wait: sooner is refused
      // again, later leaves slots unused while callers sit out a longer Retry-After.
      throw new ServiceError('upstream_unavailable', 'The HubSpot call budget has no free slot before this request\'s deadline', {
        retryAfterS: (reservation.waitMs - maxWaitMs) / 1000
      })
    }
    if (reservation.waitMs > 0) {
      try {
        await sleep(reservation.waitMs, undefined, { signal: deadline.signal })
      } catch {
        throw new ServiceError('upstream_timeout', 'The deadline passed while waiting for a HubSpot call slot')
      }
    }
    if (await mayGo(budget, reservation, clock.now() - askedAt - reservation.waitMs, deadline, options)) {
      events.budgetWaited(clock.now() - startedAt)
      return
    }
  }
}

/**
 * Whether a caller holding `reservation` may call now. A caller that slept always confirms (a 429 may
 * have paused everyone meanwhile); so does one whose answer came back late, and it confirms again while
 * the confirmations themselves come back late, since a stale "go" is as late as a stale slot. Only a
 * stalled event loop makes answers late, so this ends when the stall does, or at the deadline.
 */
async function mayGo (budget: OutboundBudget, reservation: Reservation, lateMs: number, deadline: Deadline, options: AcquireOptions): Promise<boolean> {
  if (reservation.waitMs === 0 && lateMs <= options.lateToleranceMs) return true
  for (;;) {
    if (deadline.expired) throw new ServiceError('upstream_timeout', 'The deadline passed while confirming a HubSpot call slot')
    const askedAt = options.clock.now()
    if (!await budget.confirm(reservation.ticket)) return false
    if (options.clock.now() - askedAt <= options.lateToleranceMs) return true
  }
}
