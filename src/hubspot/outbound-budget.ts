import { setTimeout as sleep } from 'node:timers/promises'
import type { RateBudget } from '../config/types.js'
import type { Clock, Deadline } from '../deadline.js'
import type { RoundTripFloor } from './round-trip-floor.js'
import { ServiceError } from '../errors.js'
import type { ServiceEvents } from '../events.js'

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
 * Reservations are spaced on a window stretched by a margin (windowWithMarginMs), so a caller that
 * sends up to that margin after its slot still keeps every one of HubSpot's real windows within the
 * budget: half the margin is allowed for waking late, half for the way to HubSpot. A caller later than
 * that (a stalled event loop, a long GC pause) *confirms* first: its entry moves to the actual moment
 * and it goes only if no window holding that moment would overfill (including the windows of calls
 * reserved after it, which counted on its old slot); otherwise it queues again. A caller that slept
 * also asks whether a 429 pause began meanwhile. Waking is not sending: the HubSpot client checks the
 * same tolerance when the request is about to be written (hubspot/send-deadline.ts) and hands a late
 * one back to acquireSlot, to move or queue again in the same way.
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
   * Says whether the call may go now: false while a 429 pause is on. With `moveToNow` (a caller later
   * than the tolerance) the reservation also moves to now and the answer is false when that would
   * overfill a window. On false the reservation is dropped and the caller reserves again.
   */
  confirm: (ticket: string, moveToNow: boolean) => Promise<boolean>
  /** HubSpot answered a ten-second 429: no one calls for `ms`. */
  pause: (ms: number) => Promise<void>
}

/** The stretch added to the window: see windowWithMarginMs. */
export function marginMs (windowMs: number): number {
  return Math.min(250, Math.ceil(windowMs / 10))
}

const BURST_SPREAD_MARGINS = 4

/**
 * The least time between two slots: a full budget's burst spreads over four margins (1 s for 100/10s,
 * 400 ms for 100/1s). Slots that share one instant wake together and queue behind one another in the
 * process for CPU, and the last of a hundred then sends late enough for HubSpot to count it in the next
 * window; spread over one margin they still ask a hundred calls' CPU within 100 ms. Four margins is the
 * narrowest spread that kept a login storm free of 429s (the figures are in docs/design.md). A small
 * burst pays little for it: the tenth caller of a burst waits 90 ms at 100/10s.
 */
export function slotSpacingMs (budget: RateBudget): number {
  return BURST_SPREAD_MARGINS * marginMs(budget.windowMs) / budget.max
}

/**
 * HubSpot counts calls when they arrive, we count them when we decide to send them; the gap varies
 * (a new TLS connection, the network). Stretching our window by a margin keeps that jitter from ever
 * putting `max + 1` calls into one of HubSpot's windows.
 */
export function windowWithMarginMs (windowMs: number): number {
  return windowMs + marginMs(windowMs)
}

/** Tickets of calls counted through assumeCalls: never handed to a caller. */
const ASSUMED_TICKET_PREFIX = 'assumed:'

/**
 * The in-process sliding log: reservation times in ascending order (reservations are made at or after
 * the newest one; a confirmation re-inserts in order). Entries leave once a window behind.
 *
 * Every operation costs about the same however many calls a window holds: departed entries are cut off
 * in bulk rather than one splice per call, and a confirmation finds its ticket by its reserved time
 * (a binary search) rather than by scanning every ticket. With thousands of calls in a window (a high
 * budget under load) the scans and splices had cost a miss more than the rest of the budget.
 */
export class SlidingLog {
  /** Entries before #start have left the window; they are cut off once they are half the arrays. */
  readonly #times: number[] = []
  readonly #tickets: string[] = []
  #start = 0
  /** The time each handed-out ticket still in the log is entered at. */
  readonly #enteredAt = new Map<string, number>()
  readonly #windowMs: number
  #nextTicket = 0
  #pausedUntil = 0
  #assumed = 0

  readonly #spacingMs: number

  /** `windowMs` includes the margin; `spacingMs` is the least time between two slots (slotSpacingMs). */
  constructor (readonly max: number, windowMs: number, spacingMs = 0) {
    this.#windowMs = windowMs
    this.#spacingMs = spacingMs
  }

  /** The earliest moment from `now` at which one more call keeps every window within `max`. */
  earliest (now: number): number {
    this.#prune(now)
    const end = this.#times.length
    let at = Math.max(now, this.#pausedUntil)
    if (end > this.#start) at = Math.max(at, this.#times[end - 1]! + this.#spacingMs)
    // The max-th newest call must have left the window when the new one is made.
    if (end - this.#start >= this.max) at = Math.max(at, this.#times[end - this.max]! + this.#windowMs)
    return at
  }

  reserve (now: number, maxWaitMs: number): Reservation {
    const at = this.earliest(now)
    const waitMs = at - now
    const ticket = String(this.#nextTicket++)
    if (waitMs > maxWaitMs) return { granted: false, waitMs, ticket }
    this.#times.push(at)
    this.#tickets.push(ticket)
    this.#enteredAt.set(ticket, at)
    return { granted: true, waitMs, ticket }
  }

  confirm (ticket: string, now: number, moveToNow = true): boolean {
    if (!moveToNow && now >= this.#pausedUntil) return true
    const index = this.#indexOf(ticket)
    if (index !== -1) {
      this.#times.splice(index, 1)
      this.#tickets.splice(index, 1)
      this.#enteredAt.delete(ticket)
    }
    this.#prune(now)
    if (now < this.#pausedUntil) return false
    // Entries from #start on are all within the window now; those not after `now` are the ones it holds.
    const start = this.#start
    let position = this.#times.length
    while (position > start && this.#times[position - 1]! > now) position--
    if (position - start >= this.max) return false
    // Calls reserved within a window after now counted on the old slot: their windows must not overfill.
    for (let later = position; later < this.#times.length && this.#times[later]! < now + this.#windowMs; later++) {
      const at = this.#times[later]!
      let inWindow = 0
      for (let index = later; index >= start && this.#times[index]! > at - this.#windowMs; index--) inWindow++
      if (inWindow >= this.max) return false
    }
    this.#times.splice(position, 0, now)
    this.#tickets.splice(position, 0, ticket)
    this.#enteredAt.set(ticket, now)
    return true
  }

  pause (now: number, ms: number): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, now + ms)
  }

  /**
   * Counts `calls` calls made elsewhere at `at` (up to `max`: more cannot matter), as if this log had
   * made them: the shared window's calls, when this log takes over from it.
   */
  assumeCalls (calls: number, at: number): void {
    let position = this.#times.length
    while (position > this.#start && this.#times[position - 1]! > at) position--
    for (let i = 0; i < Math.min(calls, this.max); i++) {
      this.#times.splice(position, 0, at)
      this.#tickets.splice(position, 0, `${ASSUMED_TICKET_PREFIX}${this.#assumed++}`)
    }
  }

  /** The entries still in the window at `now` (reserved slots included), oldest first. */
  entries (now: number): Array<{ at: number; ticket: string; assumed: boolean }> {
    this.#prune(now)
    const entries: Array<{ at: number; ticket: string; assumed: boolean }> = []
    for (let index = this.#start; index < this.#times.length; index++) {
      const ticket = this.#tickets[index]!
      entries.push({ at: this.#times[index]!, ticket, assumed: ticket.startsWith(ASSUMED_TICKET_PREFIX) })
    }
    return entries
  }

  pausedForMs (now: number): number {
    return Math.max(0, this.#pausedUntil - now)
  }

  /** Where `ticket` is in the log (-1 when it is not): among the entries at its time, found by bisection. */
  #indexOf (ticket: string): number {
    const at = this.#enteredAt.get(ticket)
    if (at === undefined) return -1
    let low = this.#start
    let high = this.#times.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (this.#times[middle]! < at) low = middle + 1
      else high = middle
    }
    for (let index = low; index < this.#times.length && this.#times[index] === at; index++) {
      if (this.#tickets[index] === ticket) return index
    }
    return -1
  }

  #prune (now: number): void {
    let start = this.#start
    while (start < this.#times.length && this.#times[start]! <= now - this.#windowMs) this.#enteredAt.delete(this.#tickets[start++]!)
    this.#start = start
    if (start > 0 && start * 2 >= this.#times.length) {
      this.#times.splice(0, start)
      this.#tickets.splice(0, start)
      this.#start = 0
    }
  }
}

export function createMemoryBudget (budget: RateBudget, clock: Clock): OutboundBudget & { log: SlidingLog } {
  const log = new SlidingLog(budget.max, windowWithMarginMs(budget.windowMs), slotSpacingMs(budget))
  return {
    log,
    reserve: async maxWaitMs => log.reserve(clock.now(), maxWaitMs),
    confirm: async (ticket, moveToNow) => log.confirm(ticket, clock.now(), moveToNow),
    pause: async ms => log.pause(clock.now(), ms)
  }
}

/**
 * A slot less than this far off is taken at once: a timer cannot wait less than a millisecond anyway,
 * and with a large budget the spacing makes such waits common (they cost a timer and up to a
 * millisecond each). Going that early is safe: HubSpot's window is shorter than ours by the margin.
 */
const MIN_SLEEP_MS = 1

export interface AcquireOptions {
  events: ServiceEvents
  clock: Clock
  /** Time kept back from the deadline for the call itself: a slot later than that would only time out. */
  callHeadroomMs: number
  /**
   * The longest a caller waits for a slot. A slot further off is refused at once (503 with Retry-After)
   * instead of holding the request for most of its deadline behind a saturated budget.
   */
  maxSlotWaitMs: number
  /** A caller this much later than its slot confirms before calling (half the window's margin). */
  lateToleranceMs: number
  /** Times the budget's answers: their round trip is added to the tolerance. None: answers count as instant. */
  roundTrip?: RoundTripFloor
}

/** A granted slot: its reservation, and the latest moment the call may still be written to HubSpot. */
export interface Slot {
  ticket: string
  /** The slot plus the tolerance for leaving late (clock ms): a write after this could count in a later window. */
  sendBy: number
}

/**
 * Waits for a slot (at most `maxSlotWaitMs`, and never past the deadline less the call's headroom), or
 * refuses at once with 503 upstream_unavailable and a Retry-After saying when a new request would get
 * a slot in time. With `missed` (a call that was held
 * back because it would have left after its `sendBy`), that reservation first moves to now if no window
 * would overfill, and only otherwise does the caller queue again.
 */
export async function acquireSlot (budget: OutboundBudget, deadline: Deadline, options: AcquireOptions, missed?: Slot): Promise<Slot> {
  const { clock, events } = options
  if (missed !== undefined) {
    const movedTo = await mayGo(budget, missed.ticket, missed.sendBy - toleranceMs(options), true, deadline, options)
    if (movedTo !== undefined) return { ticket: missed.ticket, sendBy: movedTo + toleranceMs(options) }
  }
  const startedAt = clock.now()
  for (;;) {
    const askedAt = clock.now()
    const maxWaitMs = Math.max(0, Math.min(options.maxSlotWaitMs, deadline.remainingMs() - options.callHeadroomMs))
    const reservation = await timed(options, () => budget.reserve(maxWaitMs))
    if (!reservation.granted) {
      events.budgetRefused()
      // A request sent after this long would find its slot within its own wait: sooner is refused
      // again, later leaves slots unused while callers sit out a longer Retry-After.
      throw new ServiceError('upstream_unavailable', 'The HubSpot call budget has no free slot soon enough for this request', {
        retryAfterS: (reservation.waitMs - maxWaitMs) / 1000
      })
    }
    const sleeps = reservation.waitMs >= MIN_SLEEP_MS
    if (sleeps) {
      try {
        await sleep(reservation.waitMs, undefined, { signal: deadline.signal })
      } catch {
        throw new ServiceError('upstream_timeout', 'The deadline passed while waiting for a HubSpot call slot')
      }
    }
    // The slot on this process's clock: the earliest it can be, so lateness is never underestimated.
    const goesAt = await mayGo(budget, reservation.ticket, askedAt + reservation.waitMs, sleeps, deadline, options)
    if (goesAt !== undefined) {
      // A renewal (missed) is not a new call: only first acquisitions are observed, once each.
      if (missed === undefined) events.budgetWaited(clock.now() - startedAt)
      return { ticket: reservation.ticket, sendBy: goesAt + toleranceMs(options) }
    }
  }
}

/**
 * Whether the caller holding `ticket` may call now, and at which slot: undefined means reserve again.
 * Up to the tolerance after its slot it keeps the slot (the window's margin covers that lateness);
 * having slept (`mustConfirm`), it still asks whether a 429 paused everyone meanwhile, and goes if it is
 * still within the tolerance once the answer is back. A later caller moves its entry to now, and does so again while
 * the answers themselves come back late, since a stale "go" is as late as a stale slot. The tolerance
 * includes the round trip every answer takes (RoundTripFloor), so what makes an answer late here is a
 * stalled event loop: this ends when the stall does, or at the deadline.
 */
async function mayGo (budget: OutboundBudget, ticket: string, slotAt: number, mustConfirm: boolean, deadline: Deadline, options: AcquireOptions): Promise<number | undefined> {
  const { clock } = options
  if (!mustConfirm && clock.now() - slotAt <= toleranceMs(options)) return slotAt
  for (;;) {
    if (deadline.expired) throw new ServiceError('upstream_timeout', 'The deadline passed while confirming a HubSpot call slot')
    const askedAt = clock.now()
    const moveToNow = askedAt - slotAt > toleranceMs(options)
    if (!await timed(options, () => budget.confirm(ticket, moveToNow))) return undefined
    if (moveToNow) slotAt = askedAt
    if (clock.now() - slotAt <= toleranceMs(options)) return slotAt
  }
}

/** How late after its slot a caller may still go: the tolerance, plus the budget's own round trip. */
function toleranceMs (options: AcquireOptions): number {
  return options.lateToleranceMs + (options.roundTrip?.ms(options.clock.now()) ?? 0)
}

/** Runs one ask of the budget, timing its answer when the caller keeps a round-trip floor. */
async function timed<T> (options: AcquireOptions, ask: () => Promise<T>): Promise<T> {
  const { clock, roundTrip } = options
  const askedAt = clock.now()
  const answer = await ask()
  const answeredAt = clock.now()
  roundTrip?.record(answeredAt - askedAt, answeredAt)
  return answer
}
