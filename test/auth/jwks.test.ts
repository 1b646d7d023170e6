import { generateKeyPairSync } from 'node:crypto'
import t from 'tap'
import { baseEnv, bearer, build, signSession, startEmulator, startJwksServer } from '../helper.js'

function signingKey (kid: string, curve: 'P-256' | 'rsa' = 'P-256'): { kid: string; jwk: object; privatePem: string; algorithm: string } {
  const { publicKey, privateKey } = curve === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: curve })
  const algorithm = curve === 'rsa' ? 'RS256' : 'ES256'
  return {
    kid,
    algorithm,
    jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: algorithm, use: 'sig' },
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  }
}

const claims = { sub: 'user-1', email: 'ada@example.com' }
const sign = (key: ReturnType<typeof signingKey>, kid: string | undefined = key.kid): string =>
  signSession(claims, { key: key.privatePem, algorithm: key.algorithm, ...(kid === undefined ? {} : { kid }) })

t.test('JWKS: keys are fetched once and cached; rotation to a new kid is picked up', async t => {
  const emulator = await startEmulator(t)
  const first = signingKey('key-1')
  const jwks = await startJwksServer(t, [first.jwk])
  const service = await build(t, baseEnv(emulator, { JWT_SECRET: undefined, JWT_JWKS_URL: jwks.url, JWT_JWKS_COOLDOWN_S: '0' }))

  t.equal((await service.get('/chat-token', bearer(sign(first)))).status, 200)
  t.equal((await service.get('/chat-token', bearer(sign(first)))).status, 200)
  t.equal(jwks.fetches(), 1, 'the key set is cached')

  const second = signingKey('key-2', 'rsa')
  jwks.setKeys([first.jwk, second.jwk])
  t.equal((await service.get('/chat-token', bearer(sign(second)))).status, 200, 'a token with the new kid verifies after one refetch')
  t.equal(jwks.fetches(), 2)
  t.equal((await service.get('/chat-token', bearer(sign(first)))).status, 200, 'the old key still works while it is published')
})

t.test('JWKS: unknown kids refetch at most once per cooldown', async t => {
  const emulator = await startEmulator(t)
  const key = signingKey('key-1')
  const jwks = await startJwksServer(t, [key.jwk])
  const service = await build(t, baseEnv(emulator, { JWT_SECRET: undefined, JWT_JWKS_URL: jwks.url, JWT_JWKS_COOLDOWN_S: '3600' }))
  t.equal((await service.get('/chat-token', bearer(sign(key)))).status, 200)
  for (let i = 0; i < 20; i++) {
    const answer = await service.get('/chat-token', bearer(sign(key, `junk-${i}`)))
    t.equal(answer.json().code, 'invalid_token')
  }
  t.equal(jwks.fetches(), 1, 'twenty junk kids inside the cooldown cost no refetch')
  t.equal(emulator.calls().length, 1)
})

t.test('JWKS: a token without kid is accepted only when the set holds one key; symmetric keys are ignored', async t => {
  const emulator = await startEmulator(t)
  const key = signingKey('only')
  const jwks = await startJwksServer(t, [key.jwk, { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' }])
  const service = await build(t, baseEnv(emulator, { JWT_SECRET: undefined, JWT_JWKS_URL: jwks.url }))
  t.equal((await service.get('/chat-token', bearer(sign(key, undefined)))).status, 200)
  const hmac = signSession(claims, { key: 'secret', algorithm: 'HS256', kid: 'hmac' })
  t.equal((await service.get('/chat-token', bearer(hmac))).json().code, 'invalid_token', 'an oct key in the set is never used')
})

t.test('JWKS: the key set unreachable at start answers 503 with Retry-After, not 401', async t => {
  const emulator = await startEmulator(t)
  const key = signingKey('key-1')
  const jwks = await startJwksServer(t, [key.jwk])
  jwks.setStatus(500)
  const service = await build(t, baseEnv(emulator, { JWT_SECRET: undefined, JWT_JWKS_URL: jwks.url, JWT_JWKS_COOLDOWN_S: '0' }))
  const answer = await service.get('/chat-token', bearer(sign(key)))
  t.equal(answer.status, 503)
  t.equal(answer.json().code, 'upstream_unavailable')
  t.ok(answer.headers['retry-after'])
  jwks.setStatus(200)
  t.equal((await service.get('/chat-token', bearer(sign(key)))).status, 200, 'recovers once the set can be fetched')
})

t.test('JWKS: an alg that does not match the key is refused', async t => {
  const emulator = await startEmulator(t)
  const key = signingKey('key-1', 'rsa')
  const jwks = await startJwksServer(t, [key.jwk])
  const service = await build(t, baseEnv(emulator, { JWT_SECRET: undefined, JWT_JWKS_URL: jwks.url }))
  const ps256 = signSession(claims, { key: key.privatePem, algorithm: 'PS256', kid: 'key-1' })
  t.equal((await service.get('/chat-token', bearer(ps256))).json().code, 'invalid_token', 'the JWK says RS256')
  const longKid = signSession(claims, { key: key.privatePem, algorithm: 'RS256', kid: 'k'.repeat(300) })
  t.equal((await service.get('/chat-token', bearer(longKid))).json().code, 'invalid_token')
  t.equal(jwks.fetches(), 1, 'the long kid caused no fetch')
})
