import t from 'tap'
import { identityFingerprint, identityKey } from '../../src/auth/identity.js'
import { createSessionContext, type SessionContextSettings } from '../../src/auth/session-context.js'

/** What one verified session token yields, worked out once: visitor, keys, per-caller key, or a refusal. */

const settings = (canLookup = false): SessionContextSettings => ({
  identity: { emailClaim: 'email', firstNameClaim: 'given_name', lastNameClaim: 'family_name', requireEmailVerified: false },
  canLookup,
  hashEmail: value => `h(${value})`
})

t.test('claims with an email: the visitor, its cache key and its email hash, all on one immutable object', async t => {
  const context = createSessionContext({ sub: 'u1', email: 'Ada@Example.com', given_name: 'Ada', exp: 1 }, settings())
  t.ok(Object.isFrozen(context) && Object.isFrozen(context.claims) && Object.isFrozen(context.subject), 'shared by every request with this token, so nothing can change it')
  if (context.subject.kind !== 'visitor') throw new Error(`expected a visitor, got ${context.subject.kind}`)
  const { visitor } = context.subject
  t.same(visitor.identity, { email: 'ada@example.com', firstName: 'Ada' })
  t.same(visitor.key, { email: 'ada@example.com', fingerprint: identityFingerprint({ email: 'ada@example.com', firstName: 'Ada' }) })
  t.equal(visitor.emailHash, 'h(ada@example.com)')
  t.equal(context.callerKey, 's:h(sub\u0000u1)', 'counted by subject')
})

t.test('the per-caller key: the subject, else the normalised email, else one shared key', async t => {
  t.equal(createSessionContext({ email: ' ADA@example.com' }, settings()).callerKey, 'e:h(email\u0000ada@example.com)', 'every spelling of one address is one caller')
  t.equal(createSessionContext({ email: 'ada@example.com' }, settings()).callerKey, 'e:h(email\u0000ada@example.com)')
  t.equal(createSessionContext({ sub: '', email: 'not an email' }, settings()).callerKey, 'n:')
})

t.test('a name change is a different identity key; equal identities, equal keys', async t => {
  const ada = identityKey({ email: 'ada@example.com', firstName: 'Ada' })
  t.same(identityKey({ email: 'ada@example.com', firstName: 'Ada' }), ada)
  t.not(identityKey({ email: 'ada@example.com', firstName: 'Augusta' }).fingerprint, ada.fingerprint)
  t.not(identityKey({ email: 'ada@example.com', lastName: 'Ada' }).fingerprint, ada.fingerprint, 'which name holds the text matters')
})

t.test('claims that name nobody usable are a refusal kept for later, not an exception now', async t => {
  const missing = createSessionContext({ sub: 'u1' }, settings())
  t.match(missing.subject, { kind: 'refused', code: 'email_missing' })
  const unverified = createSessionContext({ sub: 'u1', email: 'ada@example.com', email_verified: false }, settings())
  t.match(unverified.subject, { kind: 'refused', code: 'email_not_verified' })
  t.equal(unverified.callerKey, 's:h(sub\u0000u1)', 'still counted against its caller')
})

t.test('no email but a subject, with a user directory: a lookup, with the names the claims carry', async t => {
  const context = createSessionContext({ sub: 'auth0|42', given_name: 'Ada' }, settings(true))
  t.same(context.subject, { kind: 'lookup', subject: 'auth0|42', names: { firstName: 'Ada' } })
})
