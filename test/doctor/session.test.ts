import { generateKeyPairSync } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { baseEnv, JWT_SECRET, signSession, startEmulator, startJwksServer } from '../helper.js'
import { check, doctor } from './doctor-helper.js'

/** --jwt through the service's own session plugin and identity mapping; the JWKS and the user directory. */

type Teardown = { teardown: (fn: () => unknown) => void }

/** A user directory that knows one subject and wants one Authorization value. */
async function startDirectory (t: Teardown): Promise<{ template: string; requests: () => string[] }> {
  const seen: string[] = []
  const server = createServer((request, response) => {
    seen.push(request.url ?? '')
    if (request.headers.authorization !== 'Bearer directory-key') return response.writeHead(401).end()
    if (request.url === '/users/u-42') {
      return response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ email: 'Grace@Example.com', firstName: 'Grace', lastName: 'Hopper' }))
    }
    response.writeHead(404).end()
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => server.close(resolve)))
  return { template: `http://127.0.0.1:${(server.address() as AddressInfo).port}/users/{sub}`, requests: () => seen }
}

t.test('a valid token: the email and names it maps to, never the token itself', async t => {
  const emulator = await startEmulator(t)
  const jwt = signSession({ sub: 'u-1', email: 'Ada@Example.com', given_name: 'Ada', family_name: 'Lovelace' })
  const report = await doctor(baseEnv(emulator), { jwt })
  const session = check(report, 'session')
  t.equal(session.status, 'ok')
  t.equal(session.summary, 'the session token is valid and maps to ada@example.com, first name "Ada", last name "Lovelace" (from its claims)')
  t.match(session.details[0], /^Signed with HS256; expires \d{4}-\d\d-\d\dT/)
  t.match(session.facts, { email: 'ada@example.com', firstName: 'Ada', lastName: 'Lovelace', source: 'claims', subject: 'u-1', alg: 'HS256' })
  const everything = JSON.stringify(report)
  t.notOk(everything.includes(jwt), 'no token')
  t.notOk(everything.includes(JWT_SECRET), 'no secret')
  t.equal(report.exitCode, 0)
})

t.test('refused tokens: the service\'s code, its reason and what to check', async t => {
  const emulator = await startEmulator(t)
  const cases: Array<[string, string, RegExp, RegExp]> = [
    [signSession({ email: 'ada@example.com' }, { key: 'another-secret-that-is-long-enough-to-sign-with' }), 'invalid_token', /session token is invalid/, /JWT_ALGORITHMS, JWT_ISSUER and JWT_AUDIENCE/],
    [signSession({ email: 'ada@example.com' }, { expiresInS: -60 }), 'token_expired', /expired/, /Sign in again/],
    [signSession({ sub: 'u-1' }), 'email_missing', /no "email" claim/, /EMAIL_CLAIM/],
    [signSession({ email: 'ada@example.com', email_verified: false }), 'email_not_verified', /not verified/, /not verified/]
  ]
  for (const [jwt, code, reason, hint] of cases) {
    const report = await doctor(baseEnv(emulator), { jwt })
    const session = check(report, 'session')
    t.equal(session.status, 'fail', code)
    t.match(session.summary, `the session token is refused: ${code} (`)
    t.match(session.summary, reason)
    t.match(session.details[0], hint)
    t.equal(report.exitCode, 1)
  }
  t.equal(check(await doctor(baseEnv(emulator)), 'session').status, 'skip', 'no --jwt: not tried')
})

t.test('a token with a subject only: looked up in the user directory, as the service does', async t => {
  const emulator = await startEmulator(t)
  const directory = await startDirectory(t)
  const env = baseEnv(emulator, { USER_LOOKUP_URL: directory.template, USER_LOOKUP_AUTH: 'Bearer directory-key' })
  const report = await doctor(env, { jwt: signSession({ sub: 'u-42', given_name: 'Amazing Grace' }) })
  const session = check(report, 'session')
  t.equal(session.status, 'ok')
  t.equal(session.summary, 'the session token is valid and maps to grace@example.com, first name "Grace", last name "Hopper" (from the user directory (subject "u-42"))')
  t.match(check(report, 'user-directory'), { status: 'ok', summary: 'looked up subject "u-42" (see the session check)' })
  t.same(directory.requests(), ['/users/u-42'], 'one lookup, no probe besides it')

  const unknown = await doctor(env, { jwt: signSession({ sub: 'u-7' }) })
  t.match(check(unknown, 'session'), { status: 'fail', facts: { code: 'user_lookup_failed' } })
  t.match(check(unknown, 'user-directory'), { status: 'fail', summary: 'looking up subject "u-7" failed: The user directory does not know this user' })
})

t.test('without --jwt the user directory is probed for reachability and its Authorization', async t => {
  const emulator = await startEmulator(t)
  const directory = await startDirectory(t)
  const good = check(await doctor(baseEnv(emulator, { USER_LOOKUP_URL: directory.template, USER_LOOKUP_AUTH: 'Bearer directory-key' })), 'user-directory')
  t.equal(good.status, 'ok')
  t.match(good.summary, /answered 404 for a made-up subject$/)
  t.same(directory.requests(), ['/users/chat-token-doctor-probe'])

  const refused = check(await doctor(baseEnv(emulator, { USER_LOOKUP_URL: directory.template, USER_LOOKUP_AUTH: 'Bearer wrong' })), 'user-directory')
  t.equal(refused.status, 'fail')
  t.match(refused.details[0], /USER_LOOKUP_AUTH/)

  const down = check(await doctor(baseEnv(emulator, { USER_LOOKUP_URL: 'http://127.0.0.1:9/users/{sub}' })), 'user-directory')
  t.equal(down.status, 'fail')
  t.match(down.summary, /ECONNREFUSED.*USER_LOOKUP_URL/)
  t.equal(check(await doctor(baseEnv(emulator)), 'user-directory').status, 'skip')
})

t.test('the JWKS: fetched, its keys counted with their algorithms, and a JWKS-signed token verified', async t => {
  const emulator = await startEmulator(t)
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const rsaJwk = { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rsa-1', alg: 'RS256', use: 'sig' }
  const ecJwk = { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-1', alg: 'ES256', use: 'sig' }
  const jwks = await startJwksServer(t, [rsaJwk, ecJwk, { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' }])
  const env = baseEnv(emulator, { JWT_SECRET: undefined, JWT_JWKS_URL: jwks.url, JWT_AUDIENCE: 'web' })
  const jwt = signSession({ email: 'ada@example.com', aud: 'web' }, { key: rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), algorithm: 'RS256', kid: 'rsa-1' })
  const report = await doctor(env, { jwt })
  const keys = check(report, 'jwks')
  t.equal(keys.status, 'ok')
  t.match(keys.summary, /^fetched in \d+ ms: 3 key\(s\), 2 usable, for RS256, ES256$/)
  t.match(keys.facts, { keys: 3, usable: 2, algorithms: ['RS256', 'ES256'], kids: ['rsa-1', 'ec-1'] })
  t.match(check(report, 'session'), { status: 'ok', facts: { alg: 'RS256', kid: 'rsa-1', email: 'ada@example.com' } })

  const narrowed = check(await doctor({ ...env, JWT_ALGORITHMS: 'RS256' }), 'jwks')
  t.equal(narrowed.status, 'warn')
  t.match(narrowed.details[0], /"ec-1" \(ES256\) use an algorithm outside JWT_ALGORITHMS \(RS256\)/)

  jwks.setStatus(500)
  const failing = check(await doctor(env), 'jwks')
  t.match(failing, { status: 'fail', summary: /answered 500$/ })
  jwks.setStatus(200)
  jwks.setKeys([{ kty: 'oct', k: 'c2VjcmV0' }])
  t.match(check(await doctor(env), 'jwks'), { status: 'fail', summary: /none a public signing key/ })
  t.equal(check(await doctor(baseEnv(emulator)), 'jwks').status, 'skip', 'JWT_SECRET: no JWKS')
})
