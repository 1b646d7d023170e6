import t from 'tap'
import { cacheKeyFor, identityFingerprint } from '../../src/tokens/token-cache.js'

t.test('a frozen identity gets its cache key worked out once', async t => {
  const identity = Object.freeze({ email: 'ada@example.com', firstName: 'Ada' })
  const key = cacheKeyFor(identity)
  t.equal(cacheKeyFor(identity), key, 'the same key object on the next request')
  t.same(key, { email: 'ada@example.com', fingerprint: identityFingerprint(identity) })
  t.equal(cacheKeyFor(Object.freeze({ email: 'ada@example.com', firstName: 'Ada' })).fingerprint, key.fingerprint, 'an equal identity, an equal key')
})

t.test('a mutable identity is keyed afresh, so a change of name changes the key', async t => {
  const identity: { email: string; firstName?: string } = { email: 'ada@example.com', firstName: 'Ada' }
  const before = cacheKeyFor(identity)
  identity.firstName = 'Augusta'
  const after = cacheKeyFor(identity)
  t.not(after.fingerprint, before.fingerprint)
  t.equal(after.fingerprint, identityFingerprint({ email: 'ada@example.com', firstName: 'Augusta' }))
})
