import t from 'tap'
import { ServiceError } from '../../src/errors.js'
import { FillNotices, formatNotice } from '../../src/tokens/fill-notices.js'

/** The notices a lock holder sends to the requests waiting on it, as one waiter hears them. */

const HASH = 'h1'
const failed = formatNotice(HASH, new ServiceError('upstream_unavailable', 'HubSpot failed', { retryAfterS: 7 }))

t.test('a notice that comes while the waiter is busy between two waits is kept for its next wait', async t => {
  const notices = new FillNotices()
  const listener = notices.listen(HASH)
  t.equal(await listener.next(1), undefined, 'nothing heard: the wait ends when its time is up')
  notices.deliver(failed)
  t.equal(listener.heardFailure()?.code, 'upstream_unavailable', 'the failure is known before the next wait')
  const notice = await listener.next(60_000)
  t.match(notice, { ok: false, error: { code: 'upstream_unavailable', retryAfterS: 7 } }, 'and that wait answers it at once')
  t.equal(listener.heardFailure(), undefined, 'taken once')
  listener.close()
})

t.test('a notice wakes a wait in progress', async t => {
  const notices = new FillNotices()
  const listener = notices.listen(HASH)
  const waiting = listener.next(60_000)
  notices.deliver(formatNotice(HASH, undefined))
  t.same(await waiting, { ok: true })
  listener.close()
})

t.test('a failure outranks an "ok" heard before it; an "ok" does not hide a failure', async t => {
  const notices = new FillNotices()
  const first = notices.listen(HASH)
  notices.deliver(formatNotice(HASH, undefined))
  notices.deliver(failed)
  t.match(await first.next(60_000), { ok: false })
  const second = notices.listen(HASH)
  notices.deliver(failed)
  notices.deliver(formatNotice(HASH, undefined))
  t.match(await second.next(60_000), { ok: false })
  first.close()
  second.close()
})

t.test('every listener on the identity hears; other identities and unreadable notices are ignored', async t => {
  const notices = new FillNotices()
  const [a, b] = [notices.listen(HASH), notices.listen(HASH)]
  const other = notices.listen('h2')
  for (const message of ['h1', 'h1 fail', 'h1 fail no_such_code 3', 'h1 maybe', '', ' ok', 'h1x ok']) notices.deliver(message)
  t.equal(a.heardFailure(), undefined)
  t.equal(await a.next(1), undefined, 'nothing readable was heard')
  notices.deliver(failed)
  t.match(await a.next(60_000), { ok: false })
  t.match(await b.next(60_000), { ok: false })
  t.equal(await other.next(1), undefined, 'another identity heard nothing')
  for (const listener of [a, b, other]) listener.close()
})

t.test('close ends a wait in progress and stops listening', async t => {
  const notices = new FillNotices()
  const listener = notices.listen(HASH)
  const waiting = listener.next(60_000)
  listener.close()
  t.equal(await waiting, undefined)
  notices.deliver(failed)
  t.equal(listener.heardFailure(), undefined, 'nothing is heard after close')
  const later = notices.listen(HASH)
  t.equal(later.heardFailure(), undefined, 'a later listener starts empty')
  later.close()
})
