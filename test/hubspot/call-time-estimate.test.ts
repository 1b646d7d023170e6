import t from 'tap'
import { CallTimeEstimate } from '../../src/hubspot/call-time-estimate.js'

/** What a HubSpot call needs of a request's deadline before it is sent. */

t.test('1.5 × the slowest of the last 16 calls, between the floor and the cap', async t => {
  const estimate = new CallTimeEstimate({ floorMs: 1000, capMs: 2500 })
  t.equal(estimate.needMs(), 1000, 'the floor until something is known')
  for (let i = 0; i < 10; i++) estimate.record(50)
  t.equal(estimate.needMs(), 1000, 'fast answers never lower it below the floor')
  estimate.record(1200)
  t.equal(estimate.needMs(), 1800, 'a HubSpot answering in 1.2 s needs 1.8 s')
  estimate.record(4000)
  t.equal(estimate.needMs(), 2500, 'never more than the cap, so calls keep going out and the estimate keeps learning')
  for (let i = 0; i < 16; i++) estimate.record(100)
  t.equal(estimate.needMs(), 1000, 'the slow ones age out after 16 calls')
})
