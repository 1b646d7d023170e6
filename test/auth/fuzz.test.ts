import fc from 'fast-check'
import t from 'tap'
import { baseEnv, build, signSession, startEmulator } from '../helper.js'

/**
 * Property-based fuzzing of everything a caller controls: the Authorization header, the session cookie
 * and the claims. Whatever comes in: never a 5xx, always problem+json on errors, and never a HubSpot
 * call without a valid signature.
 */

const RUNS = Number(process.env.FUZZ_RUNS ?? 300)
// The per-caller limit would answer 429 long before the runs end; it is tested elsewhere.
const env = { RATE_LIMIT_MAX: '1000000' }
// Header values the HTTP client can send: visible latin1 and spaces, no CR/LF.
const headerText = fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).filter(c => c !== 0x7f).map(c => String.fromCharCode(c)), maxLength: 300 })
const base64urlText = fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.'.split('')), maxLength: 400 })

t.test('fuzzed Authorization headers and cookies', async t => {
  const emulator = await startEmulator(t)
  const service = await build(t, baseEnv(emulator, { ...env, JWT_COOKIE: 'sid' }))
  let checked = 0
  await fc.assert(fc.asyncProperty(
    fc.oneof(headerText, base64urlText.map(text => `Bearer ${text}`), headerText.map(text => `bearer ${text}`)),
    fc.option(fc.oneof(headerText.filter(text => !text.includes(';')), base64urlText), { nil: undefined }),
    async (authorization, cookie) => {
      const headers: Record<string, string> = { authorization }
      if (cookie !== undefined) headers.cookie = `sid=${cookie}`
      const answer = await service.get('/chat-token', headers)
      checked++
      return answer.status >= 400 && answer.status < 500 && /^application\/problem\+json/.test(String(answer.headers['content-type']))
    }
  ), { numRuns: RUNS })
  t.equal(emulator.calls().length, 0, `no HubSpot call in ${checked} fuzzed requests`)
})

t.test('mutated valid tokens never pass unless the signed bytes are unchanged', async t => {
  const emulator = await startEmulator(t)
  const service = await build(t, baseEnv(emulator, env))
  const token = signSession({ sub: 'u1', email: 'ada@example.com' }, { expiresInS: 3600 })
  const bytes = (text: string): string => text.split('.').map(part => Buffer.from(part, 'base64url').toString('hex')).join('.')
  let accepted = 0
  await fc.assert(fc.asyncProperty(
    fc.nat({ max: token.length - 1 }),
    fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.='.split('')),
    async (position, replacement) => {
      const mutated = token.slice(0, position) + replacement + token.slice(position + 1)
      const answer = await service.get('/chat-token', { authorization: `Bearer ${mutated}` })
      if (answer.status === 200) {
        accepted++
        return mutated.split('.').length === 3 && bytes(mutated) === bytes(token)
      }
      return answer.status === 401 && /^application\/problem\+json/.test(String(answer.headers['content-type']))
    }
  ), { numRuns: RUNS })
  t.ok(emulator.calls().length <= accepted, 'HubSpot was called only for tokens whose signed bytes were intact')
})

t.test('fuzzed claims in validly signed tokens', async t => {
  const emulator = await startEmulator(t)
  const service = await build(t, baseEnv(emulator, env))
  const claimValue = fc.oneof(fc.string({ maxLength: 80 }), fc.emailAddress(), fc.anything({ maxDepth: 2 }))
  await fc.assert(fc.asyncProperty(
    fc.record({ email: claimValue, email_verified: fc.oneof(fc.boolean(), fc.constant('true'), fc.anything({ maxDepth: 1 })), given_name: claimValue, family_name: claimValue, sub: fc.string({ maxLength: 40 }) }, { requiredKeys: [] }),
    async claims => {
      const before = emulator.calls().length
      const answer = await service.get('/chat-token', { authorization: `Bearer ${signSession(claims)}` })
      if (answer.status === 200) {
        const sent = emulator.calls()[before]?.body as { email?: unknown } | undefined
        return emulator.calls().length === before + 1 && sent?.email === answer.json().email
      }
      const code = answer.json().code
      return [403, 422].includes(answer.status) && ['email_not_verified', 'email_missing'].includes(String(code)) && emulator.calls().length === before
    }
  ), { numRuns: RUNS })
  t.pass('every fuzzed claim set got 200 with a HubSpot call, or 403/422 without one')
})
