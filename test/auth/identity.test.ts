import t from 'tap'
import { identityFromClaims, claimValue, cleanName } from '../../src/auth/identity.js'
import { normaliseEmail } from '../../src/auth/email.js'
import type { IdentityConfig } from '../../src/config/types.js'
import { ServiceError } from '../../src/errors.js'

const config: IdentityConfig = { emailClaim: 'email', firstNameClaim: 'given_name', lastNameClaim: 'family_name', requireEmailVerified: false }

function codeOf (fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (error) {
    return error instanceof ServiceError ? error.code : 'not-a-service-error'
  }
  return undefined
}

t.test('emails lose surrounding ASCII spaces and are ASCII lower-cased; nothing else is trimmed', async t => {
  t.equal(normaliseEmail('  Ada.Lovelace+chat@Example.COM '), 'ada.lovelace+chat@example.com')
  t.equal(normaliseEmail('ada@example.com\t'), undefined, 'a tab is refused, not trimmed')
  t.equal(normaliseEmail('\u00A0ada@example.com'), undefined, 'a no-break space is refused, not trimmed')
  t.equal(normaliseEmail('o\'brien@sub.example.co.uk'), 'o\'brien@sub.example.co.uk')
  t.equal(normaliseEmail('user@xn--bcher-kva.example'), 'user@xn--bcher-kva.example')
})

t.test('doubtful emails are refused', async t => {
  const refused: Array<[string, unknown]> = [
    ['not a string', 42],
    ['empty', ''],
    ['no @', 'ada.example.com'],
    ['two @', 'ada@evil@example.com'],
    ['space inside', 'ada lovelace@example.com'],
    ['CR/LF', 'ada@example.com\r\nbcc:eve@x.com'],
    ['display name', '"Eve" <eve@example.com>'],
    ['quoted local part', '"ada"@example.com'],
    ['Cyrillic look-alike', 'аda@example.com'],
    ['right-to-left mark', 'ada\u200f@example.com'],
    ['zero-width space', 'ada\u200b@example.com'],
    ['no dot in domain', 'ada@localhost'],
    ['leading dot', '.ada@example.com'],
    ['double dot', 'ada..l@example.com'],
    ['domain label with hyphen edge', 'ada@-example.com'],
    ['numeric TLD', 'ada@example.123'],
    ['over 254 characters', `${'a'.repeat(60)}@${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.${'e'.repeat(10)}.com`],
    ['local part over 64', `${'a'.repeat(65)}@example.com`]
  ]
  for (const [name, value] of refused) t.equal(normaliseEmail(value), undefined, name)
})

t.test('the email claim: exact key first, then a dotted path', async t => {
  const claims = { 'https://example.com/email': 'ns@example.com', profile: { contact: { email: 'deep@example.com' } } }
  t.equal(claimValue(claims, 'https://example.com/email'), 'ns@example.com')
  t.equal(claimValue(claims, 'profile.contact.email'), 'deep@example.com')
  t.equal(claimValue(claims, 'profile.missing.email'), undefined)
  t.equal(claimValue({ a: ['x'] }, 'a.0'), undefined, 'arrays are not walked')
  t.equal(claimValue({}, '__proto__.polluted'), undefined, 'prototype keys are not followed')
  const resolution = identityFromClaims(claims, { ...config, emailClaim: 'https://example.com/email' }, false)
  t.same(resolution, { kind: 'identity', identity: { email: 'ns@example.com' } })
})

t.test('names are optional, cleaned and bounded', async t => {
  const resolution = identityFromClaims({ email: 'a@example.com', given_name: '  Ada\u0000 ', family_name: 'L'.repeat(300) }, config, false)
  t.same(resolution, { kind: 'identity', identity: { email: 'a@example.com', firstName: 'Ada', lastName: 'L'.repeat(100) } })
  t.equal(cleanName('   '), undefined)
  t.equal(cleanName(['Ada']), undefined)
  t.equal(cleanName('Zoë \u202eevil'), 'Zoë evil')
})

t.test('email_verified rules', async t => {
  const strict = { ...config, requireEmailVerified: true }
  t.equal(codeOf(() => identityFromClaims({ email: 'a@example.com', email_verified: false }, config, false)), 'email_not_verified')
  t.equal(codeOf(() => identityFromClaims({ email: 'a@example.com', email_verified: 'false' }, config, false)), 'email_not_verified')
  t.equal(codeOf(() => identityFromClaims({ email: 'a@example.com', email_verified: 'maybe' }, config, false)), 'email_not_verified')
  t.equal(codeOf(() => identityFromClaims({ email: 'a@example.com' }, config, false)), undefined)
  t.equal(codeOf(() => identityFromClaims({ email: 'a@example.com' }, strict, false)), 'email_not_verified')
  t.equal(codeOf(() => identityFromClaims({ email: 'a@example.com', email_verified: true }, strict, false)), undefined)
  t.equal(codeOf(() => identityFromClaims({ email: 'a@example.com', email_verified: 'true' }, strict, false)), undefined)
})

t.test('missing or unusable email', async t => {
  t.equal(codeOf(() => identityFromClaims({ sub: 'u1' }, config, false)), 'email_missing')
  t.equal(codeOf(() => identityFromClaims({ email: ['a@example.com'] }, config, false)), 'email_missing')
  t.equal(codeOf(() => identityFromClaims({ email: 'nope' }, config, true)), 'email_missing', 'an invalid email is not looked up')
  t.same(identityFromClaims({ sub: 'u1', given_name: 'Ada' }, config, true), { kind: 'lookup', subject: 'u1', names: { firstName: 'Ada' } })
  t.equal(codeOf(() => identityFromClaims({ sub: 42 }, config, true)), 'email_missing')
})
