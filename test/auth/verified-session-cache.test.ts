import t from 'tap'
import { VerifiedSessionCache } from '../../src/auth/verified-session-cache.js'

/** The verified-token cache: exact-token hits only, until exp, bounded, and claims that cannot be changed. */

const expS = 2_000_000_000

function remember (cache: VerifiedSessionCache, token: string, claims: Record<string, unknown>): Record<string, unknown> {
  return cache.remember(cache.lookup(token).key, claims)
}

t.test('the exact token gets back the same frozen claims; any other text is unknown', async t => {
  const cache = new VerifiedSessionCache(10, () => 0)
  const claims = remember(cache, 'a.b.c', { sub: 'u1', exp: expS })
  t.ok(Object.isFrozen(claims), 'claims are frozen: every later request shares them')
  t.equal(cache.lookup('a.b.c').claims, claims, 'the same object, so derived facts can be memoised on it')
  t.equal(cache.lookup('a.b.C').claims, undefined)
  t.equal(cache.lookup('a.b.c ').claims, undefined)
  t.not(cache.lookup('a.b.c').key.includes('a.b.c'), 'entries are keyed by a hash, not the token')
})

t.test('an entry is served until exp, then dropped so the verifier decides again', async t => {
  let now = expS * 1000 - 1
  const cache = new VerifiedSessionCache(10, () => now)
  remember(cache, 'tok', { exp: expS })
  t.ok(cache.lookup('tok').claims)
  now = expS * 1000
  t.equal(cache.lookup('tok').claims, undefined, 'not at exp')
  t.equal(cache.size, 0, 'the expired entry is gone')
})

t.test('claims without a numeric exp are not remembered', async t => {
  const cache = new VerifiedSessionCache(10, () => 0)
  for (const exp of [undefined, '2000000000', Number.NaN, Number.POSITIVE_INFINITY]) {
    remember(cache, `tok-${String(exp)}`, { exp })
  }
  t.equal(cache.size, 0)
})

t.test('bounded: past maxEntries the oldest entry goes first', async t => {
  const cache = new VerifiedSessionCache(2, () => 0)
  remember(cache, 'first', { exp: expS })
  remember(cache, 'second', { exp: expS })
  cache.lookup('first')
  remember(cache, 'third', { exp: expS })
  t.equal(cache.size, 2)
  t.equal(cache.lookup('first').claims, undefined, 'first in, first out, even when just read')
  t.ok(cache.lookup('second').claims)
  t.ok(cache.lookup('third').claims)
})
