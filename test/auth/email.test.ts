import fc from 'fast-check'
import t from 'tap'
import { normaliseEmail } from '../../src/auth/email.js'
import { identityFromClaims } from '../../src/auth/identity.js'
import { ServiceError } from '../../src/errors.js'
import { baseEnv, bearer, build, signSession, startEmulator } from '../helper.js'

/**
 * An email is checked for what it is before anything transforms it: a non-ASCII string must never
 * become someone else's ASCII address through case mapping or trimming.
 */

const victim = 'kate@corp.example'

function refusalCode (email: string): string | undefined {
  try {
    identityFromClaims({ email }, { emailClaim: 'email', firstNameClaim: 'given_name', lastNameClaim: 'family_name', requireEmailVerified: false }, false)
  } catch (error) {
    return error instanceof ServiceError ? error.code : 'not-a-service-error'
  }
  return undefined
}

t.test('Unicode case mapping and trimming cannot turn a string into someone else\'s address', async t => {
  const impostors: Array<[string, string]> = [
    ['KELVIN SIGN for K', '\u212Aate@corp.example'],
    ['LATIN CAPITAL I WITH DOT ABOVE', 'kate@corp.exam\u0130ple'],
    ['LONG S (upper-cases to S)', 'kate@corp.\u017Fxample'],
    ['ANGSTROM SIGN', 'kate@corp.ex\u212Bmple'],
    ['NO-BREAK SPACE after', `${victim}\u00A0`],
    ['BYTE ORDER MARK before', `\uFEFF${victim}`],
    ['IDEOGRAPHIC SPACE after', `${victim}\u3000`],
    ['LINE SEPARATOR after', `${victim}\u2028`],
    ['PARAGRAPH SEPARATOR before', `\u2029${victim}`],
    ['EM SPACE before', `\u2003${victim}`],
    ['NEXT LINE (U+0085) after', `${victim}\u0085`],
    ['ASCII tab before', `\t${victim}`],
    ['line feed after', `${victim}\n`],
    ['fullwidth @', 'kate\uFF20corp.example'],
    ['combining mark on a letter', 'ka\u0301te@corp.example']
  ]
  for (const [name, value] of impostors) {
    t.equal(normaliseEmail(value), undefined, name)
    t.equal(refusalCode(value), 'email_missing', `${name}: email_missing`)
  }
  t.equal(normaliseEmail('KATE@Corp.Example'), victim, 'ASCII case is still folded')
  t.equal(normaliseEmail(` ${victim}  `), victim, 'surrounding ASCII spaces are the one thing dropped')
})

t.test('every code point from U+0080 to U+10FFFF refuses the email, wherever it stands', async t => {
  // In chunks of 64 Ki code points, so a failure names its range; lone surrogates are included.
  const positions = [
    (c: string) => `${c}${victim}`,
    (c: string) => `${victim}${c}`,
    (c: string) => `ka${c}te@corp.example`,
    (c: string) => `kate@co${c}rp.example`,
    (c: string) => `${c}ate@corp.example`
  ]
  for (let start = 0x80; start <= 0x10FFFF; start += 0x10000) {
    const end = Math.min(start + 0x10000, 0x110000)
    let accepted = 0
    let firstAccepted = ''
    for (let codePoint = start; codePoint < end; codePoint++) {
      const character = String.fromCodePoint(codePoint)
      for (const place of positions) {
        if (normaliseEmail(place(character)) !== undefined) {
          accepted++
          firstAccepted ||= `U+${codePoint.toString(16).toUpperCase()}`
        }
      }
    }
    t.equal(accepted, 0, `U+${start.toString(16).toUpperCase()}–U+${(end - 1).toString(16).toUpperCase()}: none accepted${firstAccepted === '' ? '' : ` (first: ${firstAccepted})`}`)
  }
})

t.test('the canonical form is a fixed point, and only ASCII emails ever have one', async t => {
  t.doesNotThrow(() => fc.assert(fc.property(fc.emailAddress(), fc.boolean(), (email, upper) => {
    const input = upper ? email.toUpperCase() : email
    const canonical = normaliseEmail(input)
    if (canonical === undefined) return true
    return normaliseEmail(canonical) === canonical && /^[\x21-\x7e]+$/.test(canonical) && canonical === canonical.toLowerCase()
  }), { numRuns: 5000 }), 'fixed point')
  t.doesNotThrow(() => fc.assert(fc.property(fc.string({ unit: 'binary' }), value => {
    const canonical = normaliseEmail(value)
    // Anything accepted is printable ASCII as given: nothing changed but surrounding spaces and A–Z.
    return canonical === undefined || (/^[\x20-\x7e]+$/.test(value) && canonical === value.replace(/^ +| +$/g, '').replace(/[A-Z]/g, c => c.toLowerCase()))
  }), { numRuns: 20_000 }), 'nothing but A–Z is ever changed')
})

t.test('over HTTP: a session whose email holds any non-ASCII character gets 422 email_missing, never a token', async t => {
  const emulator = await startEmulator(t)
  const service = await build(t, baseEnv(emulator, { RATE_LIMIT_MAX: '100000' }))
  // The victim has a cached token; no impostor may receive it.
  const own = await service.get('/chat-token', bearer(signSession({ sub: 'kate', email: victim })))
  t.equal(own.status, 200)
  const samples = fc.sample(fc.integer({ min: 0x80, max: 0x10FFFF }), { numRuns: 150, seed: 12 })
  for (const codePoint of [0x212A, 0x00A0, 0xFEFF, 0x3000, 0x2028, ...samples]) {
    const character = String.fromCodePoint(codePoint)
    for (const email of [`${victim}${character}`, `${character}${victim}`, `\u212Aate@corp.example`]) {
      const answer = await service.get('/chat-token', bearer(signSession({ sub: 'mallory', email })))
      if (answer.status !== 422 || answer.json().code !== 'email_missing') {
        t.fail(`U+${codePoint.toString(16)}: ${answer.status} ${answer.text}`)
        return
      }
    }
  }
  t.equal(emulator.calls().length, 1, 'HubSpot was asked only for the victim')
})
