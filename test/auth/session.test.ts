import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import t from 'tap'
import { ACCESS_TOKEN, baseEnv, bearer, build, signSession, startEmulator } from '../helper.js'

/** Session JWT verification through the real route: every failure is a contract 401, with no HubSpot call. */

function pemPair (type: 'rsa' | 'ec' | 'ed25519' | 'rsa-pss', options?: object): { publicPem: string; privatePem: string; publicKey: KeyObject } {
  const { publicKey, privateKey } = generateKeyPairSync(type as 'rsa', (options ?? {}) as { modulusLength: number })
  return {
    publicKey,
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  }
}

const claims = { sub: 'user-1', email: 'ada@example.com' }

t.test('HS256 secret: valid token answers 200; every failure maps to its 401 without calling HubSpot', async t => {
  const emulator = await startEmulator(t)
  const service = await build(t, baseEnv(emulator))
  t.equal((await service.get('/chat-token', bearer(signSession(claims)))).status, 200)
  t.equal(emulator.calls().length, 1)

  const failures: Array<[string, Record<string, string>, number, string, RegExp]> = [
    ['no header', {}, 401, 'missing_token', /^Bearer$/],
    ['Basic scheme', { authorization: 'Basic dXNlcjpwYXNz' }, 401, 'missing_token', /^Bearer$/],
    ['empty bearer', { authorization: 'Bearer ' }, 401, 'missing_token', /^Bearer$/],
    ['garbage', bearer('not.a.jwt'), 401, 'invalid_token', /error="invalid_token"/],
    ['wrong secret', bearer(signSession(claims, { key: 'another-secret-another-secret-xx' })), 401, 'invalid_token', /error="invalid_token"/],
    ['expired', bearer(signSession({ ...claims, exp: Math.floor(Date.now() / 1000) - 60 }, { expiresInS: null as unknown as number })), 401, 'token_expired', /error="invalid_token"/],
    ['not yet valid', bearer(signSession({ ...claims, nbf: Math.floor(Date.now() / 1000) + 600 })), 401, 'token_expired', /error="invalid_token"/],
    ['no exp claim', bearer(signSession(claims, { expiresInS: null as unknown as number })), 401, 'invalid_token', /error="invalid_token"/],
    ['HS512 when only HS256 allowed', bearer(signSession(claims, { algorithm: 'HS512' })), 200, '', /./],
    ['oversized token', bearer('a'.repeat(9000)), 401, 'invalid_token', /error="invalid_token"/]
  ]
  for (const [name, headers, status, code, challenge] of failures) {
    if (status === 200) continue
    const answer = await service.get('/chat-token', headers)
    t.equal(answer.status, status, name)
    t.equal(answer.json().code, code, name)
    t.match(answer.headers['content-type'], /^application\/problem\+json/, name)
    t.match(answer.headers['www-authenticate'], challenge, name)
  }
  t.equal(emulator.calls().length, 1, 'no HubSpot call for any authentication failure')
})

// The cache itself (exact-key hits, exp, bound) is tested in verified-session-cache.test.ts; this is the
// part a loosely keyed cache would get wrong: a near-copy of a remembered token must not ride on it.
t.test('repeats of a verified token are served; a copy with any byte changed is verified afresh and refused', async t => {
  const emulator = await startEmulator(t)
  const service = await build(t, baseEnv(emulator))
  const token = signSession(claims)
  for (let i = 0; i < 3; i++) t.equal((await service.get('/chat-token', bearer(token))).status, 200, `request ${i + 1}`)
  const [header, payload, signature] = token.split('.') as [string, string, string]
  const flip = (text: string, at: number): string => text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1)
  t.equal((await service.get('/chat-token', bearer(`${header}.${payload}.${flip(signature, 5)}`))).json().code, 'invalid_token', 'signature byte')
  t.equal((await service.get('/chat-token', bearer(`${header}.${flip(payload, 5)}.${signature}`))).json().code, 'invalid_token', 'claims byte')
  t.equal((await service.get('/chat-token', bearer(`${token}.`))).json().code, 'invalid_token', 'an appended segment')

  const noEmail = signSession({ sub: 'user-2' })
  t.equal((await service.get('/chat-token', bearer(noEmail))).json().code, 'email_missing')
  t.equal((await service.get('/chat-token', bearer(noEmail))).json().code, 'email_missing', 'a refusal is not remembered as an identity')
  t.equal(emulator.calls().length, 1, 'one HubSpot call: the repeats were cache hits')
})

t.test('expiry honours JWT_CLOCK_TOLERANCE_S', async t => {
  const emulator = await startEmulator(t)
  const service = await build(t, baseEnv(emulator, { JWT_CLOCK_TOLERANCE_S: '30' }))
  const now = Math.floor(Date.now() / 1000)
  const justExpired = signSession({ ...claims, exp: now - 10 }, { expiresInS: null as unknown as number })
  t.equal((await service.get('/chat-token', bearer(justExpired))).status, 200, '10 s past exp is inside a 30 s tolerance')
  const longExpired = signSession({ ...claims, exp: now - 60 }, { expiresInS: null as unknown as number })
  t.equal((await service.get('/chat-token', bearer(longExpired))).json().code, 'token_expired')
})

t.test('JWT_ALGORITHMS pins the algorithm', async t => {
  const emulator = await startEmulator(t)
  const service = await build(t, baseEnv(emulator, { JWT_ALGORITHMS: 'HS256' }))
  t.equal((await service.get('/chat-token', bearer(signSession(claims, { algorithm: 'HS512' })))).json().code, 'invalid_token')
  t.equal((await service.get('/chat-token', bearer(signSession(claims)))).status, 200)
})

t.test('issuer and audience must match when configured', async t => {
  const emulator = await startEmulator(t)
  const service = await build(t, baseEnv(emulator, { JWT_ISSUER: 'https://idp.example.com/,https://old-idp.example.com/', JWT_AUDIENCE: 'web' }))
  const good = { ...claims, iss: 'https://old-idp.example.com/', aud: 'web' }
  t.equal((await service.get('/chat-token', bearer(signSession(good)))).status, 200)
  t.equal((await service.get('/chat-token', bearer(signSession({ ...good, aud: ['other', 'web'] })))).status, 200, 'an audience array containing ours')
  t.equal((await service.get('/chat-token', bearer(signSession({ ...good, iss: 'https://evil.example.com/' })))).json().code, 'invalid_token')
  t.equal((await service.get('/chat-token', bearer(signSession({ ...good, aud: 'mobile' })))).json().code, 'invalid_token')
  t.equal((await service.get('/chat-token', bearer(signSession({ ...claims, aud: 'web' })))).json().code, 'invalid_token', 'missing iss')
})

t.test('each PEM key type verifies its own algorithms and refuses an HMAC token signed with the public key', async t => {
  const emulator = await startEmulator(t)
  const cases: Array<[string, ReturnType<typeof pemPair>, string]> = [
    ['RSA RS256', pemPair('rsa', { modulusLength: 2048 }), 'RS256'],
    ['RSA PS256', pemPair('rsa', { modulusLength: 2048 }), 'PS256'],
    ['EC P-256', pemPair('ec', { namedCurve: 'P-256' }), 'ES256'],
    ['EC P-384', pemPair('ec', { namedCurve: 'P-384' }), 'ES384'],
    ['Ed25519', pemPair('ed25519'), 'EdDSA']
  ]
  for (const [name, pair, algorithm] of cases) {
    const service = await build(t, baseEnv(emulator, { JWT_SECRET: undefined, JWT_PUBLIC_KEY: pair.publicPem }))
    const answer = await service.get('/chat-token', bearer(signSession(claims, { key: pair.privatePem, algorithm })))
    t.equal(answer.status, 200, `${name}: valid`)
    const confused = signSession(claims, { key: pair.publicPem, algorithm: 'HS256' })
    t.equal((await service.get('/chat-token', bearer(confused))).json().code, 'invalid_token', `${name}: HS256 with the public key as secret`)
    const other = pemPair('ec', { namedCurve: 'P-256' })
    t.equal((await service.get('/chat-token', bearer(signSession(claims, { key: other.privatePem, algorithm: 'ES256' })))).json().code, 'invalid_token', `${name}: another key`)
    await service.app.close()
  }
})

t.test('session cookie: read when JWT_COOKIE is set, header wins, foreign origins refused', async t => {
  const emulator = await startEmulator(t)
  const service = await build(t, baseEnv(emulator, { JWT_COOKIE: 'app_session', CORS_ORIGINS: 'https://shop.example.com' }))
  const cookie = { cookie: `other=1; app_session=${signSession(claims)}` }
  t.equal((await service.get('/chat-token', cookie)).status, 200, 'cookie alone')
  t.equal((await service.get('/chat-token', { ...cookie, origin: 'https://shop.example.com' })).status, 200, 'listed origin')
  t.equal((await service.get('/chat-token', { ...cookie, origin: service.origin })).status, 200, 'own origin')
  const foreign = await service.get('/chat-token', { ...cookie, origin: 'https://evil.example.com' })
  t.equal(foreign.status, 403)
  t.equal(foreign.json().code, 'origin_not_allowed')
  t.equal((await service.get('/chat-token', { ...cookie, 'sec-fetch-site': 'cross-site' })).json().code, 'origin_not_allowed')
  t.equal((await service.get('/chat-token', { ...bearer(signSession(claims)), origin: 'https://evil.example.com' })).status, 200, 'bearer tokens need no origin check')
  const both = await service.get('/chat-token', { cookie: `app_session=${signSession({ ...claims, email: 'cookie@example.com' })}`, ...bearer(signSession(claims)) })
  t.equal(both.json().email, 'ada@example.com', 'the Authorization header wins over the cookie')
  t.equal((await service.get('/chat-token', { cookie: 'app_session=junk' })).json().code, 'invalid_token')

  const headerOnly = await build(t, baseEnv(emulator))
  t.equal((await headerOnly.get('/chat-token', cookie)).json().code, 'missing_token', 'cookies are ignored when JWT_COOKIE is unset')
})

t.test('the HubSpot access token is sent as a Bearer header', async t => {
  const emulator = await startEmulator(t)
  const service = await build(t, baseEnv(emulator))
  await service.get('/chat-token', bearer(signSession(claims)))
  t.equal(emulator.calls()[0]?.authorization, `Bearer ${ACCESS_TOKEN}`)
})
