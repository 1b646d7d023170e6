import t from 'tap'
import { RoundTripFloor } from '../../src/hubspot/round-trip-floor.js'

/** The round trip every answer of the budget carries, as the lateness tolerance adds it. */

const AT = 1_700_000_000_000

t.test('nothing timed yet: no extra lateness', async t => {
  t.equal(new RoundTripFloor(100).ms(AT), 0)
})

t.test('the least answer time of the last ten seconds', async t => {
  const floor = new RoundTripFloor(100)
  floor.record(80, AT)
  floor.record(60, AT + 300)
  floor.record(90, AT + 1_500)
  t.equal(floor.ms(AT + 2_000), 60)
})

t.test('a stall makes a few answers late: it does not raise the floor', async t => {
  const floor = new RoundTripFloor(1_000)
  for (let ms = 0; ms < 5_000; ms += 250) floor.record(2, AT + ms)
  // Half a second of a stalled event loop: every answer in it took 400 ms.
  for (let ms = 5_000; ms < 5_500; ms += 10) floor.record(400, AT + ms)
  t.equal(floor.ms(AT + 5_500), 2)
})

t.test('answers older than ten seconds are forgotten: a Redis that moved closer lowers it, one further away raises it', async t => {
  const closer = new RoundTripFloor(1_000)
  closer.record(80, AT)
  closer.record(5, AT + 10_000)
  t.equal(closer.ms(AT + 10_000), 5)
  const further = new RoundTripFloor(1_000)
  further.record(5, AT)
  t.equal(further.ms(AT + 9_999), 5)
  further.record(80, AT + 10_000)
  t.equal(further.ms(AT + 10_000), 80)
  t.equal(further.ms(AT + 20_000), 0, 'and nothing timed for ten seconds is nothing known')
})

t.test('capped: never more than the margin leaves beside the tolerance', async t => {
  const floor = new RoundTripFloor(50)
  floor.record(140, AT)
  t.equal(floor.ms(AT), 50)
})
