import t from 'tap'
import { createSessionContext, type SessionContext } from '../../src/auth/session-context.js'
import { VerifiedSessionCache } from '../../src/auth/verified-session-cache.js'

/** The verified-token cache: exact-token hits only, until exp, bounded, one shared context per token. */

const expS = 2_000_000_000

const identity = { emailClaim: 'email', firstNameClaim: 'given_name', lastNameClaim: 'family_name', requireEmailVerified: false }

function remember (cache: VerifiedSessionCache, token: string, claims: Record<string, unknown>): SessionContext {
  return cache.remember(cache.lookup(token).key, createSessionContext(claims, { identity, canLookup: false, hashEmail: value => value }))
}

t.test('the exact token gets back the same context; any other text is unknown', async t => {
  const cache = new VerifiedSessionCache(10, () => 0)
  const context = remember(cache, 'a.b.c', { sub: 'u1', exp: expS })
  t.equal(cache.lookup('a.b.c').context, context, 'the same object: what it holds was worked out once')
  t.equal(cache.lookup('a.b.C').context, undefined)
  t.equal(cache.lookup('a.b.c ').context, undefined)
  t.not(cache.lookup('a.b.c').key.includes('a.b.c'), 'entries are keyed by a hash, not the token')
})

t.test('an entry is served until exp, then dropped so the verifier decides again', async t => {
  let now = expS * 1000 - 1
  const cache = new VerifiedSessionCache(10, () => now)
  remember(cache, 'tok', { exp: expS })
  t.ok(cache.lookup('tok').context)
  now = expS * 1000
  t.equal(cache.lookup('tok').context, undefined, 'not at exp')
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
  t.equal(cache.lookup('first').context, undefined, 'first in, first out, even when just read')
  t.ok(cache.lookup('second').context)
  t.ok(cache.lookup('third').context)
})
