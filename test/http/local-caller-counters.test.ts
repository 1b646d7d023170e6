import t from 'tap'
import { LocalCallerCounters, MAX_LOCAL_CALLERS } from '../../src/http/local-caller-counters.js'

/** The in-process per-caller counters: fixed windows from each caller's first request, one number each. */

t.test('a window counts from the caller\'s first request and ends exactly windowMs later', async t => {
  const counters = new LocalCallerCounters(1000)
  t.same(counters.increment('a', 60_000, 30, 1000), { current: 1, ttl: 60_000 })
  t.same(counters.increment('a', 60_000, 30, 31_000), { current: 2, ttl: 30_000 })
  t.same(counters.increment('b', 60_000, 30, 31_000), { current: 1, ttl: 60_000 }, 'each caller has its own window')
  t.same(counters.increment('a', 60_000, 30, 60_999), { current: 3, ttl: 1 }, 'still the first window 1 ms before its end')
  t.same(counters.increment('a', 60_000, 30, 61_000), { current: 1, ttl: 60_000 }, 'a fresh window at its end')
  t.same(counters.increment('b', 60_000, 30, 61_000), { current: 2, ttl: 30_000 })
})

t.test('counts stop just past the limit, which is all the limit needs', async t => {
  const counters = new LocalCallerCounters(0)
  const seen: number[] = []
  for (let i = 0; i < 6; i++) seen.push(counters.increment('a', 1000, 3, 10).current)
  t.same(seen, [1, 2, 3, 4, 4, 4])
  t.equal(counters.increment('a', 1000, 3, 1010).current, 1, 'and start again with the next window')
})

t.test('finished windows are dropped, and the number of callers is bounded', async t => {
  const counters = new LocalCallerCounters(0)
  const dayMs = 86_400_000
  for (let i = 0; i < MAX_LOCAL_CALLERS + 5; i++) counters.increment(`c${i}`, dayMs, 30, i)
  t.equal(counters.size, MAX_LOCAL_CALLERS, 'the oldest windows made room')
  t.equal(counters.increment('c0', dayMs, 30, 200_000).current, 1, 'a dropped caller starts again')
  t.equal(counters.increment('c10', dayMs, 30, 200_000).current, 2, 'a kept one goes on counting')
  counters.increment('late', dayMs, 30, dayMs + 150_000)
  t.equal(counters.size, 2, 'every window that ended is gone: c0 (restarted at 200,000) and late remain')
})

t.test('windows stay exact across the move to a new base after ~50 days of uptime', async t => {
  const start = Date.parse('2026-11-26T12:00:00Z')
  const counters = new LocalCallerCounters(start)
  const dayMs = 86_400_000
  const threshold = start + 2 ** 32
  // Both windows started before the move and end after it; the move re-encodes them.
  t.same(counters.increment('a', dayMs, 1_000_000, threshold - 1000), { current: 1, ttl: dayMs })
  t.same(counters.increment('b', dayMs, 1_000_000, threshold - 500), { current: 1, ttl: dayMs })
  t.same(counters.increment('b', dayMs, 1_000_000, threshold - 400), { current: 2, ttl: dayMs - 100 })
  t.same(counters.increment('a', dayMs, 1_000_000, threshold + 1000), { current: 2, ttl: dayMs - 2000 }, 'the same window and count after the move')
  t.same(counters.increment('b', dayMs, 1_000_000, threshold + 1000), { current: 3, ttl: dayMs - 1500 })
  t.same(counters.increment('a', dayMs, 1_000_000, threshold - 1000 + dayMs), { current: 1, ttl: dayMs }, 'and it ends when it should')
  // Five more moves, years on: still exact.
  const later = start + 5 * 2 ** 32 + 7
  for (let i = 0; i < 3; i++) counters.increment('c', dayMs, 1_000_000, later)
  t.same(counters.increment('c', dayMs, 1_000_000, later + 5), { current: 4, ttl: dayMs - 5 })
})
