import t from 'tap'
import { SlidingLog } from '../../src/hubspot/outbound-budget.js'

/**
 * The sliding log against a plain model of it: every entry in one array, pruned by a splice, tickets
 * found by scanning. Both are driven through the same long random sequence of reservations,
 * confirmations (moved to now or kept), pauses and assumed calls, and must answer every step alike.
 */
class ModelLog {
  times: number[] = []
  tickets: string[] = []
  next = 0
  pausedUntil = 0
  assumed = 0
  constructor (readonly max: number, readonly windowMs: number, readonly spacingMs: number) {}

  prune (now: number): void {
    while (this.times.length > 0 && this.times[0]! <= now - this.windowMs) {
      this.times.shift()
      this.tickets.shift()
    }
  }

  earliest (now: number): number {
    this.prune(now)
    const size = this.times.length
    let at = Math.max(now, this.pausedUntil)
    if (size > 0) at = Math.max(at, this.times[size - 1]! + this.spacingMs)
    if (size >= this.max) at = Math.max(at, this.times[size - this.max]! + this.windowMs)
    return at
  }

  reserve (now: number, maxWaitMs: number): { granted: boolean; waitMs: number; ticket: string } {
    const at = this.earliest(now)
    const ticket = String(this.next++)
    if (at - now > maxWaitMs) return { granted: false, waitMs: at - now, ticket }
    this.times.push(at)
    this.tickets.push(ticket)
    return { granted: true, waitMs: at - now, ticket }
  }

  confirm (ticket: string, now: number, moveToNow: boolean): boolean {
    if (!moveToNow && now >= this.pausedUntil) return true
    const index = this.tickets.indexOf(ticket)
    if (index !== -1) {
      this.times.splice(index, 1)
      this.tickets.splice(index, 1)
    }
    this.prune(now)
    if (now < this.pausedUntil) return false
    const held = this.times.filter(at => at <= now).length
    if (held >= this.max) return false
    for (const at of this.times.filter(time => time > now && time < now + this.windowMs)) {
      if (this.times.filter(time => time <= at && time > at - this.windowMs).length >= this.max) return false
    }
    const position = this.times.filter(at => at <= now).length
    this.times.splice(position, 0, now)
    this.tickets.splice(position, 0, ticket)
    return true
  }

  assumeCalls (calls: number, at: number): void {
    const position = this.times.filter(time => time <= at).length
    for (let i = 0; i < Math.min(calls, this.max); i++) {
      this.times.splice(position, 0, at)
      this.tickets.splice(position, 0, `assumed:${this.assumed++}`)
    }
  }

  entries (now: number): Array<{ at: number; ticket: string }> {
    this.prune(now)
    return this.times.map((at, index) => ({ at, ticket: this.tickets[index]! }))
  }
}

/** A small seeded generator, so a failure can be replayed. */
function random (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0
    return state / 2 ** 32
  }
}

for (const [max, windowMs, spacingMs, steps] of [[3, 1000, 0, 4000], [10, 1100, 11, 6000], [5000, 1100, 0, 20_000]] as const) {
  t.test(`the log answers as the plain model does: max ${max}, window ${windowMs} ms, spacing ${spacingMs} ms, ${steps} steps`, async t => {
    const next = random(max * 7919 + steps)
    const log = new SlidingLog(max, windowMs, spacingMs)
    const model = new ModelLog(max, windowMs, spacingMs)
    const handedOut: string[] = []
    let now = 1_000_000
    let mismatches = 0
    const same = (what: string, actual: unknown, expected: unknown): void => {
      if (JSON.stringify(actual) === JSON.stringify(expected)) return
      mismatches++
      if (mismatches <= 3) t.same(actual, expected, `${what} at ${now}`)
    }
    for (let step = 0; step < steps; step++) {
      // Time moves in steps from nothing to a third of a window, so entries keep leaving.
      now += Math.floor(next() * next() * windowMs / 3)
      const choice = next()
      if (choice < 0.5) {
        const maxWaitMs = Math.floor(next() * windowMs)
        const reserved = log.reserve(now, maxWaitMs)
        same('reserve', reserved, model.reserve(now, maxWaitMs))
        if (reserved.granted) handedOut.push(reserved.ticket)
      } else if (choice < 0.85 && handedOut.length > 0) {
        const ticket = handedOut.splice(Math.floor(next() * handedOut.length), 1)[0]!
        const moveToNow = next() < 0.7
        same('confirm', log.confirm(ticket, now, moveToNow), model.confirm(ticket, now, moveToNow))
      } else if (choice < 0.9) {
        const ms = Math.floor(next() * windowMs / 2)
        log.pause(now, ms)
        model.pausedUntil = Math.max(model.pausedUntil, now + ms)
      } else if (choice < 0.93) {
        const calls = Math.floor(next() * 4)
        const at = now - Math.floor(next() * windowMs)
        log.assumeCalls(calls, at)
        model.assumeCalls(calls, at)
      } else {
        same('earliest', log.earliest(now), model.earliest(now))
      }
      if (step % 97 === 0) same('entries', log.entries(now).map(({ at, ticket }) => ({ at, ticket })), model.entries(now))
    }
    t.equal(mismatches, 0, 'no step answered differently')
  })
}
