import t from 'tap'
import { isTimeZone } from '../../src/config/load-config.js'
import { AccountDay } from '../../src/hubspot/account-day.js'
import { manualClock } from '../helper.js'

/** When HubSpot's daily limit resets: midnight in the account's time zone, across DST and odd offsets. */

const HOUR_MS = 60 * 60 * 1000
const at = (iso: string): number => Date.parse(iso)

t.test('UTC: the next midnight, and a date that changes exactly there', async t => {
  const day = new AccountDay('UTC')
  t.equal(day.nextReset(at('2026-11-26T09:00:00Z')), at('2026-11-27T00:00:00Z'))
  t.equal(day.dateAt(at('2026-11-26T23:59:59.999Z')), '2026-11-26')
  t.equal(day.dateAt(at('2026-11-27T00:00:00Z')), '2026-11-27')
  t.equal(day.nextReset(at('2026-11-27T00:00:00Z')), at('2026-11-28T00:00:00Z'), 'at midnight itself the next reset is a day away')
})

t.test('America/Los_Angeles: a 23-hour day when DST starts and a 25-hour one when it ends', async t => {
  const day = new AccountDay('America/Los_Angeles')
  // 2026-03-08: clocks go from 02:00 PST to 03:00 PDT.
  t.equal(day.nextReset(at('2026-03-07T23:00:00-08:00')), at('2026-03-08T00:00:00-08:00'), 'an hour before the day of the change')
  t.equal(day.msUntilReset(at('2026-03-08T00:30:00-08:00')), 22.5 * HOUR_MS, 'that day has 23 hours')
  t.equal(day.nextReset(at('2026-03-08T12:00:00-07:00')), at('2026-03-09T07:00:00Z'), 'midnight after the change is 07:00 UTC')
  // 2026-11-01: clocks go from 02:00 PDT back to 01:00 PST.
  t.equal(day.msUntilReset(at('2026-11-01T00:30:00-07:00')), 24.5 * HOUR_MS, 'that day has 25 hours')
  t.equal(day.nextReset(at('2026-11-01T01:30:00-08:00')), at('2026-11-02T08:00:00Z'), 'the repeated hour is still the same day')
  t.equal(day.dateAt(at('2026-11-02T07:59:59Z')), '2026-11-01')
})

t.test('Asia/Kolkata: half-hour offset, midnight at 18:30 UTC', async t => {
  const day = new AccountDay('Asia/Kolkata')
  t.equal(day.nextReset(at('2026-11-26T09:00:00Z')), at('2026-11-26T18:30:00Z'))
  t.equal(day.msUntilReset(at('2026-11-26T09:00:00Z')), 9.5 * HOUR_MS)
  t.equal(day.dateAt(at('2026-11-26T18:29:59Z')), '2026-11-26')
  t.equal(day.dateAt(at('2026-11-26T18:30:00Z')), '2026-11-27')
})

t.test('Pacific/Apia: UTC+13 today, and the date it skipped in 2011', async t => {
  const day = new AccountDay('Pacific/Apia')
  t.equal(day.nextReset(at('2026-11-26T09:00:00Z')), at('2026-11-26T11:00:00Z'), 'midnight at 11:00 UTC')
  t.equal(day.dateAt(at('2026-11-26T10:59:59Z')), '2026-11-26')
  // 29 December 2011 23:59:59 (UTC-10) was followed by 31 December 00:00 (UTC+14).
  t.equal(day.nextReset(at('2011-12-30T09:00:00Z')), at('2011-12-30T10:00:00Z'))
  t.equal(day.dateAt(at('2011-12-30T10:00:00Z')), '2011-12-31')
})

t.test('America/Santiago: when DST starts, midnight itself does not exist and the day starts at 01:00', async t => {
  const day = new AccountDay('America/Santiago')
  // 2026-09-06 00:00 (-04) became 01:00 (-03).
  t.equal(day.nextReset(at('2026-09-05T23:30:00-04:00')), at('2026-09-06T04:00:00Z'))
  t.equal(day.dateAt(at('2026-09-06T04:00:00Z')), '2026-09-06')
})

t.test('a manual clock walking across a DST change sees each reset once, a date apart', async t => {
  const clock = manualClock(at('2026-03-06T12:00:00-08:00'))
  const day = new AccountDay('America/Los_Angeles')
  const resets: string[] = []
  for (let i = 0; i < 4; i++) {
    clock.set(day.nextReset(clock.now()))
    resets.push(`${day.dateAt(clock.now())} ${new Date(clock.now()).toISOString()}`)
  }
  t.same(resets, [
    '2026-03-07 2026-03-07T08:00:00.000Z',
    '2026-03-08 2026-03-08T08:00:00.000Z',
    '2026-03-09 2026-03-09T07:00:00.000Z',
    '2026-03-10 2026-03-10T07:00:00.000Z'
  ])
})

t.test('time zone names are checked against the runtime\'s zone data', async t => {
  t.ok(isTimeZone('UTC'))
  t.ok(isTimeZone('Europe/Berlin'))
  t.notOk(isTimeZone('Mars/Olympus_Mons'))
  t.notOk(isTimeZone('GMT+25'))
  t.ok(isTimeZone('Asia/Kolkata'))
})
