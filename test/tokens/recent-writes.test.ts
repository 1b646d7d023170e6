import t from 'tap'
import { RecentWrites } from '../../src/tokens/recent-writes.js'
import { manualClock } from '../helper.js'

t.test('the writes acknowledged since a moment, oldest first; one written again counts from its new time', async t => {
  const clock = manualClock()
  const recent = new RecentWrites<string>({ keepMs: 5000, maxEntries: 100, clock })
  const start = clock.now()
  recent.add('a', 'first')
  clock.advance(1000)
  recent.add('b', 'second')
  clock.advance(1000)
  recent.add('a', 'again')
  t.same(recent.since(start), [['b', 'second'], ['a', 'again']])
  t.same(recent.since(start + 1500), [['a', 'again']])
  t.same(recent.since(clock.now() + 1), [])
})

t.test('entries older than keepMs leave only as newer ones arrive: the last ones before an outage stay through it', async t => {
  const clock = manualClock()
  const recent = new RecentWrites<string>({ keepMs: 5000, maxEntries: 100, clock })
  recent.add('before-the-outage', 'x')
  const wentDown = clock.now()
  clock.advance(60_000)
  t.same(recent.since(wentDown - 5000), [['before-the-outage', 'x']], 'still there a minute later')
  recent.add('after', 'y')
  t.same(recent.since(0), [['after', 'y']], 'gone once a newer write came more than keepMs after it')
})

t.test('at most maxEntries, the oldest dropped first', async t => {
  const clock = manualClock()
  const recent = new RecentWrites<number>({ keepMs: 5000, maxEntries: 3, clock })
  for (let i = 0; i < 5; i++) recent.add(`k${i}`, i)
  t.same(recent.since(0).map(([, value]) => value), [2, 3, 4])
})
