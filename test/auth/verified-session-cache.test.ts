import t from 'tap'
import { VerifiedSessionCache } from '../../src/auth/verified-session-cache.js'

/** The verified-token cache: exact-token hits only, until exp, bounded, and claims that cannot be changed. */

const expS = 2_000_000_000

t.test('the exact token gets back the same frozen claims; any other text is unknown', async t => {
  const cache = new VerifiedSessionCache(10, () => 0)
  const claims = cache.remember('a.b.c', { sub: 'u1', exp: expS })
  t.ok(Object.isFrozen(claims), 'claims are frozen: every later request shares them')
  t.equal(cache.claimsFor('a.b.c'), claims, 'the same object, so derived facts can be memoised on it')
  t.equal(cache.claimsFor('a.b.C'), undefined)
  t.equal(cache.claimsFor('a.b.c '), undefined)
})

t.test('an entry is served until exp, then dropped so the verifier decides again', async t => {
  let now = expS * 1000 - 1
  const cache = new VerifiedSessionCache(10, () => now)
  cache.remember('tok', { exp: expS })
  t.ok(cache.claimsFor('tok'))
  now = expS * 1000
  t.equal(cache.claimsFor('tok'), undefined, 'not at exp')
  t.equal(cache.size, 0, 'the expired entry is gone')
})

t.test('claims without a numeric exp are not remembered', async t => {
  const cache = new VerifiedSessionCache(10, () => 0)
  for (const exp of [undefined, '2000000000', Number.NaN, Number.POSITIVE_INFINITY]) {
    cache.remember(`tok-${String(exp)}`, { exp })
  }
  t.equal(cache.size, 0)
})

t.test('bounded: past maxEntries the oldest entry goes first', async t => {
  const cache = new VerifiedSessionCache(2, () => 0)
  cache.remember('first', { exp: expS })
  cache.remember('second', { exp: expS })
  cache.claimsFor('first')
  cache.remember('third', { exp: expS })
  t.equal(cache.size, 2)
  t.equal(cache.claimsFor('first'), undefined, 'first in, first out, even when just read')
  t.ok(cache.claimsFor('second'))
  t.ok(cache.claimsFor('third'))
})
