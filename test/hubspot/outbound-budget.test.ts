import t from 'tap'
import { Deadline } from '../../src/deadline.js'
import { ServiceError } from '../../src/errors.js'
import { SlidingLog, acquireSlot, createMemoryBudget, slotSpacingMs, windowWithMarginMs } from '../../src/hubspot/outbound-budget.js'
import { noServiceEvents } from '../../src/events.js'
import { manualClock } from '../helper.js'

/** The largest number of times in any half-open window (t - windowMs, t]. */
function busiestWindow (times: number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b)
  let busiest = 0
  let start = 0
  for (let end = 0; end < sorted.length; end++) {
    while (sorted[end]! - sorted[start]! >= windowMs) start++
    busiest = Math.max(busiest, end - start + 1)
  }
  return busiest
}

t.test('a full window refuses until its oldest call leaves it, never earlier', async t => {
  const log = new SlidingLog(3, 1000)
  t.match(log.reserve(0, 0), { granted: true, waitMs: 0 })
  t.match(log.reserve(400, 0), { granted: true, waitMs: 0 })
  t.match(log.reserve(900, 0), { granted: true, waitMs: 0 })
  t.match(log.reserve(999, 0), { granted: false, waitMs: 1 }, 'the call at 0 still counts at 999')
  t.match(log.reserve(1000, 0), { granted: true, waitMs: 0 }, 'and no longer at 1000')
  t.match(log.reserve(1000, 0), { granted: false, waitMs: 400 }, 'next frees when the call at 400 leaves')
})

t.test('a fixed window would let twice the budget through across a boundary; the rolling one does not', async t => {
  const log = new SlidingLog(10, 1000)
  const sent: number[] = []
  for (const at of [990, 995, 1000, 1005]) {
    for (let i = 0; i < 10; i++) if (log.reserve(at, 0).granted) sent.push(at)
  }
  t.equal(sent.length, 10, 'ten calls around the 1000 ms boundary, not twenty')
  t.equal(busiestWindow(sent, 1000), 10)
})

t.test('reservations queue callers at distinct moments and never overfill any window', async t => {
  // Random arrivals, bursts and patience: whatever the pattern, no window may hold more than max.
  let seed = 42
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed / 2147483648
  }
  for (const [max, windowMs] of [[5, 1000], [50, 1000], [100, 10_000], [1, 100]] as const) {
    const log = new SlidingLog(max, windowMs)
    const granted: number[] = []
    const oddities: string[] = []
    let now = 0
    for (let i = 0; i < 5000; i++) {
      now += random() < 0.3 ? 0 : Math.floor(random() * windowMs / max * 2)
      const maxWaitMs = Math.floor(random() * windowMs * 3)
      const reservation = log.reserve(now, maxWaitMs)
      if (reservation.granted && (reservation.waitMs < 0 || reservation.waitMs > maxWaitMs)) oddities.push(`granted ${reservation.waitMs}`)
      if (!reservation.granted && reservation.waitMs <= maxWaitMs) oddities.push(`refused ${reservation.waitMs}`)
      if (reservation.granted) granted.push(now + reservation.waitMs)
    }
    t.same(oddities, [], 'grants fit the caller\'s patience; refusals say how long until a slot')
    t.ok(busiestWindow(granted, windowMs) <= max, `${max}/${windowMs}ms: busiest window ${busiestWindow(granted, windowMs)}`)
    t.ok(granted.length > 0)
  }
})

t.test('a caller later than the tolerance moves to the moment it really calls, if no window overfills; else it queues again', async t => {
  const log = new SlidingLog(2, 1000)
  t.ok(log.reserve(0, 0).granted)
  const stalled = log.reserve(0, 0)
  const c = log.reserve(0, 5000)
  const d = log.reserve(0, 5000)
  t.match([c.waitMs, d.waitMs], [1000, 1000], 'both slots open when the calls at 0 leave the window')
  // The second call at 0 would really go out at 500 (a stalled event loop): the window (0, 1000] would
  // then hold it, c and d. It loses its slot; c and d, on time, keep theirs.
  t.equal(log.confirm(stalled.ticket, 500), false)
  t.equal(log.confirm(c.ticket, 1000, false), true)
  t.equal(log.confirm(d.ticket, 1000, false), true)
  const again = log.reserve(500, 5000)
  t.match(again, { granted: true, waitMs: 1500 }, 'the stalled caller queues behind them')
  // Late again, but with room: a window after its slot holds nothing else, so it moves and goes.
  t.equal(log.confirm(again.ticket, 2200), true)
  t.match(log.reserve(2200, 5000), { granted: true, waitMs: 0 })
  t.match(log.reserve(2200, 5000), { granted: true, waitMs: 1000 }, 'the next slot follows the actual call at 2200')
})

t.test('callers a little late keep their slots: a login wave is not sent to the back of the queue', async t => {
  // The window carries a 100 ms margin, half of it the tolerance for waking late (as in acquireSlot).
  const log = new SlidingLog(2, 1100)
  const first = [log.reserve(0, 5000), log.reserve(0, 5000)]
  const second = [log.reserve(0, 5000), log.reserve(0, 5000)]
  t.match(first.map(r => r.waitMs), [0, 0])
  t.match(second.map(r => r.waitMs), [1100, 1100])
  // The first two went at 0 and 30 (30 ms late: within the tolerance, so that entry stays at 0).
  t.equal(log.confirm(second[0]!.ticket, 1105, false), true, 'on time (5 ms late): goes')
  t.equal(log.confirm(second[1]!.ticket, 1140, false), true, '40 ms late: still goes, without moving')
  const sent = [0, 30, 1105, 1140]
  t.ok(busiestWindow(sent, 1000) <= 2, 'and no 1000 ms window of the actual calls holds more than 2')
  t.match(log.reserve(1140, 5000), { granted: true, waitMs: 1060 }, 'the next slot is one stretched window after the second wave\'s slot')
})

t.test('with callers waking late at random, actual call times never overfill a window', async t => {
  let seed = 7
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed / 2147483648
  }
  const max = 20
  const windowMs = 1000
  const tolerance = 50
  const log = new SlidingLog(max, windowMs + 2 * tolerance)
  // A tiny discrete-event simulation: each caller reserves, sleeps, wakes up to 400 ms late, then
  // follows acquireSlot's rule (within the tolerance it keeps its slot; later, it moves to now if it can).
  // Arrivals are events too, so the log sees time only move forward, as it does in production.
  type Step = { at: number; caller: number; reservation?: { reservedAt: number; waitMs: number; ticket: string } }
  const steps: Step[] = []
  const sent: number[] = []
  const reserve = (caller: number, now: number): void => {
    const reservation = log.reserve(now, 3000)
    if (!reservation.granted) return
    const lag = random() < 0.2 ? Math.floor(random() * 400) : Math.floor(random() * 5)
    steps.push({ at: now + reservation.waitMs + lag, caller, reservation: { reservedAt: now, waitMs: reservation.waitMs, ticket: reservation.ticket } })
  }
  for (let caller = 0; caller < 400; caller++) steps.push({ at: Math.floor(caller * 15 * random()), caller })
  while (steps.length > 0) {
    steps.sort((a, b) => a.at - b.at)
    const step = steps.shift()!
    const held = step.reservation
    if (held === undefined) {
      reserve(step.caller, step.at)
      continue
    }
    const late = step.at - held.reservedAt - held.waitMs
    const goes = late <= tolerance ? held.waitMs === 0 || log.confirm(held.ticket, step.at, false) : log.confirm(held.ticket, step.at)
    if (goes) sent.push(step.at)
    else reserve(step.caller, step.at)
  }
  t.ok(sent.length > 100, `${sent.length} calls made`)
  t.ok(busiestWindow(sent, windowMs) <= max, `busiest window of actual calls: ${busiestWindow(sent, windowMs)}`)
})

t.test('a 429 pause holds every reservation back until it ends', async t => {
  const log = new SlidingLog(100, 10_000)
  log.pause(0, 10_000)
  t.equal(log.pausedForMs(4000), 6000)
  t.match(log.reserve(4000, 1000), { granted: false, waitMs: 6000 })
  const held = log.reserve(4000, 7000)
  t.match(held, { granted: true, waitMs: 6000 })
  t.equal(log.confirm(held.ticket, 9999, false), false, 'a caller that wakes inside the pause may not go, even on time')
  t.equal(log.confirm(held.ticket, 9999), false, 'nor a late one')
  log.pause(5000, 1000)
  t.equal(log.pausedForMs(5000), 5000, 'a shorter pause never shortens a longer one')
})

t.test('the memory budget keeps a latency margin on top of the window, on the injected clock', async t => {
  const clock = manualClock(0)
  const budget = createMemoryBudget({ max: 2, windowMs: 1000 }, clock)
  t.equal(windowWithMarginMs(1000), 1100)
  t.equal(windowWithMarginMs(10_000), 10_250)
  t.equal(slotSpacingMs({ max: 2, windowMs: 1000 }), 200, 'a full burst spreads over four 100 ms margins')
  t.equal(slotSpacingMs({ max: 100, windowMs: 10_000 }), 10, 'and over one second for HubSpot\'s 100/10s')
  t.match(await budget.reserve(0), { granted: true, waitMs: 0 })
  t.match(await budget.reserve(0), { granted: false, waitMs: 200 }, 'the next slot is one spacing later')
  t.match(await budget.reserve(200), { granted: true, waitMs: 200 })
  t.match(await budget.reserve(0), { granted: false, waitMs: 1100 })
  clock.advance(1100)
  t.match(await budget.reserve(0), { granted: true, waitMs: 0 })
})

t.test('a log taking over from the shared window counts its calls: full, it stays full for one window; half full, it has half', async t => {
  const clock = manualClock(0)
  const full = new SlidingLog(10, 1100, 0)
  full.assumeCalls(20, 300)
  t.match(full.reserve(clock.now(), 5000), { granted: true, waitMs: 1400 }, 'no slot until the assumed calls have left the window')
  t.same(full.entries(0).filter(entry => !entry.assumed).length, 1, 'only its own call is its own')
  const half = new SlidingLog(10, 1100, 0)
  half.assumeCalls(5, 300)
  clock.set(300)
  for (let i = 0; i < 5; i++) t.match(half.reserve(clock.now(), 0), { granted: true, waitMs: 0 })
  t.match(half.reserve(clock.now(), 0), { granted: false, waitMs: 1100 }, 'the other half is its own')
})

t.test('acquireSlot refuses at once with 503 and Retry-After when no slot comes before the deadline', async t => {
  const clock = manualClock(0)
  const budget = createMemoryBudget({ max: 1, windowMs: 10_000 }, clock)
  const refused: number[] = []
  const events = { ...noServiceEvents, budgetRefused: () => { refused.push(1) } }
  await acquireSlot(budget, new Deadline(5000, clock), { events, clock, callHeadroomMs: 1000, maxSlotWaitMs: 60_000, lateToleranceMs: 50 })
  const started = Date.now()
  const error = await acquireSlot(budget, new Deadline(5000, clock), { events, clock, callHeadroomMs: 1000, maxSlotWaitMs: 60_000, lateToleranceMs: 50 }).catch((e: unknown) => e)
  t.ok(Date.now() - started < 100, 'no waiting for a slot that cannot come in time')
  t.ok(error instanceof ServiceError)
  t.equal((error as ServiceError).code, 'upstream_unavailable')
  t.equal((error as ServiceError).retryAfterS, 7, 'Retry-After: when a new request would find its slot within its 4 s wait (10.25 s - 4 s)')
  t.equal(refused.length, 1)
})

t.test('acquireSlot waits at most maxSlotWaitMs: a slot further off is refused at once, though the deadline would allow it', async t => {
  const clock = manualClock(0)
  const budget = createMemoryBudget({ max: 1, windowMs: 2000 }, clock)
  const waited: number[] = []
  const refused: number[] = []
  const events = { ...noServiceEvents, budgetWaited: (ms: number) => { waited.push(ms) }, budgetRefused: () => { refused.push(clock.now()) } }
  const options = { events, clock, callHeadroomMs: 1000, maxSlotWaitMs: 1000, lateToleranceMs: 50 }
  await acquireSlot(budget, new Deadline(10_000, clock), options)
  clock.advance(500)
  // The next slot is 2.2 s after the first (window + margin): 1.7 s from now, well within a 10 s deadline.
  const error = await acquireSlot(budget, new Deadline(10_000, clock), options).catch((e: unknown) => e)
  t.ok(error instanceof ServiceError)
  t.equal((error as ServiceError).code, 'upstream_unavailable')
  t.equal((error as ServiceError).retryAfterS, 1, 'Retry-After: when the slot is within the wait (0.7 s, rounded up)')
  t.same(refused, [500], 'refused at once')
  t.equal(waited.length, 1, 'only the first caller took a slot')
  clock.advance(700)
  t.match(await budget.reserve(1000), { granted: true, waitMs: 1000 }, 'told to come back then, a caller finds its slot within the wait')
})

t.test('acquireSlot sleeps until its reserved slot and reports the wait', async t => {
  const budget = createMemoryBudget({ max: 1, windowMs: 100 }, { now: Date.now })
  const waits: number[] = []
  const events = { ...noServiceEvents, budgetWaited: (ms: number) => { waits.push(ms) } }
  await acquireSlot(budget, new Deadline(2000), { events, clock: { now: Date.now }, callHeadroomMs: 100, maxSlotWaitMs: 60_000, lateToleranceMs: 50 })
  const started = Date.now()
  await acquireSlot(budget, new Deadline(2000), { events, clock: { now: Date.now }, callHeadroomMs: 100, maxSlotWaitMs: 60_000, lateToleranceMs: 50 })
  t.ok(Date.now() - started >= 100, 'waited for the first call to leave the window')
  t.ok(waits[0]! < 20)
  t.ok(waits[1]! >= 100 && waits[1]! < 300, `waited ${waits[1]} ms`)
})

t.test('a caller that slept into a 429 pause gives up its slot and queues behind the pause', async t => {
  const budget = createMemoryBudget({ max: 1, windowMs: 100 }, { now: Date.now })
  await acquireSlot(budget, new Deadline(3000), { events: noServiceEvents, clock: { now: Date.now }, callHeadroomMs: 100, maxSlotWaitMs: 60_000, lateToleranceMs: 50 })
  const waiting = acquireSlot(budget, new Deadline(3000), { events: noServiceEvents, clock: { now: Date.now }, callHeadroomMs: 100, maxSlotWaitMs: 60_000, lateToleranceMs: 50 })
  await budget.pause(400)
  const started = Date.now()
  await waiting
  t.ok(Date.now() - started >= 350, 'did not call during the pause')
})

t.test('a call held back for leaving late renews its own reservation: moved to now if no window overfills', async t => {
  const clock = manualClock(0)
  // Stretched window 1100 ms, slots 200 ms apart, 50 ms tolerance for leaving late.
  const budget = createMemoryBudget({ max: 2, windowMs: 1000 }, clock)
  const options = { events: noServiceEvents, clock, callHeadroomMs: 100, maxSlotWaitMs: 60_000, lateToleranceMs: 50 }
  const deadline = new Deadline(5000, clock)
  const first = await acquireSlot(budget, deadline, options)
  t.equal(first.sendBy, 50, 'to be sent by its slot (0) plus the tolerance')
  t.match(await budget.reserve(5000), { granted: true, waitMs: 200 })
  // Held back at 120 (say, the pool was still connecting): moving it there overfills no window.
  clock.set(120)
  const renewed = await acquireSlot(budget, deadline, options, first)
  t.same(renewed, { ticket: first.ticket, sendBy: 170 }, 'the same reservation, now at 120')
  t.match(await budget.reserve(5000), { granted: true, waitMs: 1100 }, 'the next slot counts from the call at 120, not at 0')
})

t.test('a held-back call queues again when moving to now would overfill a later window', async t => {
  const clock = manualClock(0)
  const budget = createMemoryBudget({ max: 2, windowMs: 1000 }, clock)
  const refusals: number[] = []
  const options = { events: { ...noServiceEvents, budgetRefused: () => { refusals.push(clock.now()) } }, clock, callHeadroomMs: 100, maxSlotWaitMs: 60_000, lateToleranceMs: 50 }
  const deadline = new Deadline(1200, clock)
  const first = await acquireSlot(budget, deadline, options)
  t.match(await budget.reserve(5000), { granted: true, waitMs: 200 })
  t.match(await budget.reserve(5000), { granted: true, waitMs: 1100 }, 'a third call counted on the first leaving at 0')
  clock.set(120)
  // At 120 the first would share the third's window (0, 1100] with the second: it queues again, behind
  // the third (slot 1300), which is past its deadline (1200, less 100 for the call).
  const error = await acquireSlot(budget, deadline, options, first).catch((e: unknown) => e)
  t.ok(error instanceof ServiceError)
  t.equal((error as ServiceError).code, 'upstream_unavailable')
  t.equal((error as ServiceError).retryAfterS, 1, 'a slot at 1300 is 200 ms past what this deadline allows: one second, rounded up')
  t.same(refusals, [120])
})
