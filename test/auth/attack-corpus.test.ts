import { createHmac, createSign, generateKeyPairSync } from 'node:crypto'
import t, { type Test as Tap } from 'tap'
import { JWT_SECRET, baseEnv, bearer, build, signSession, startEmulator, startJwksServer } from '../helper.js'
import { hasDuplicateKeys } from '../../src/auth/token-shape.js'
import { ConfigError, loadConfig } from '../../src/config/load-config.js'

/**
 * Session JWT attack corpus: one named case per attack, each answered with the right contract code,
 * never a 5xx, and never a HubSpot call.
 */

const b64 = (value: string | object): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
const now = (): number => Math.floor(Date.now() / 1000)
const claims = { sub: 'attacker', email: 'eve@example.com' }
const valid = (): Record<string, unknown> => ({ ...claims, exp: now() + 600 })

/** Signs raw header and payload text with HMAC, so tests can craft JSON that libraries would never emit. */
function hmacToken (headerJson: string, payloadJson: string, secret: string | Buffer = JWT_SECRET): string {
  const input = `${b64(headerJson)}.${b64(payloadJson)}`
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
}

function rsaToken (header: object, payload: object, privateKeyPem: string): string {
  const input = `${b64(header)}.${b64(payload)}`
  return `${input}.${createSign('RSA-SHA256').update(input).sign(privateKeyPem, 'base64url')}`
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const rsaPublicPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString()
const rsaJwk = { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'good', alg: 'RS256', use: 'sig' }
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const ecPublicPem = ec.publicKey.export({ type: 'spki', format: 'pem' }).toString()
const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 })
const attackerPrivatePem = attacker.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
const attackerJwk = { ...attacker.publicKey.export({ format: 'jwk' }), kid: 'attacker', alg: 'RS256' }
const attackerCertLike = attacker.publicKey.export({ type: 'spki', format: 'der' }).toString('base64')

type Case = [name: string, token: () => string, expected: string]

async function expectAll (t: Tap, env: Record<string, string | undefined>, cases: Case[]): Promise<void> {
  const emulator = await startEmulator(t)
  const service = await build(t, baseEnv(emulator, env))
  for (const [name, token, expected] of cases) {
    const answer = await service.get('/chat-token', bearer(token()))
    t.equal(answer.json().code, expected, name)
    t.ok(answer.status < 500, `${name}: no 5xx`)
    t.match(answer.headers['content-type'], /^application\/problem\+json/, `${name}: problem+json`)
  }
  t.equal(emulator.calls().length, 0, 'no HubSpot call for any attack')
}


t.test('shared-secret service', async t => {
  await expectAll(t, {}, [
    ['alg none', () => `${b64({ alg: 'none' })}.${b64(valid())}.`, 'invalid_token'],
    ['alg None', () => `${b64({ alg: 'None' })}.${b64(valid())}.`, 'invalid_token'],
    ['alg NONE', () => `${b64({ alg: 'NONE' })}.${b64(valid())}.`, 'invalid_token'],
    ['alg nOnE with a signature', () => `${b64({ alg: 'nOnE' })}.${b64(valid())}.c2ln`, 'invalid_token'],
    ['unknown crit header', () => hmacToken(JSON.stringify({ alg: 'HS256', crit: ['x-must-understand'], 'x-must-understand': 1 }), JSON.stringify(valid())), 'invalid_token'],
    ['duplicate alg in header', () => hmacToken('{"alg":"HS256","alg":"none"}', JSON.stringify(valid())), 'invalid_token'],
    ['duplicate email in payload', () => hmacToken('{"alg":"HS256"}', `{"sub":"a","email":"eve@example.com","email":"ceo@example.com","exp":${now() + 600}}`), 'invalid_token'],
    ['duplicate key through a unicode escape', () => hmacToken('{"alg":"HS256"}', `{"sub":"a","email":"eve@example.com","\\u0065mail":"ceo@example.com","exp":${now() + 600}}`), 'invalid_token'],
    ['exp as a string', () => hmacToken('{"alg":"HS256"}', JSON.stringify({ ...claims, exp: String(now() + 600) })), 'invalid_token'],
    ['exp negative', () => hmacToken('{"alg":"HS256"}', JSON.stringify({ ...claims, exp: -1 })), 'token_expired'],
    ['exp zero', () => hmacToken('{"alg":"HS256"}', JSON.stringify({ ...claims, exp: 0 })), 'token_expired'],
    ['nbf as a string', () => hmacToken('{"alg":"HS256"}', JSON.stringify({ ...valid(), nbf: 'yesterday' })), 'invalid_token'],
    ['nbf huge', () => hmacToken('{"alg":"HS256"}', JSON.stringify({ ...valid(), nbf: 1e300 })), 'invalid_token'],
    ['iat in the future', () => hmacToken('{"alg":"HS256"}', JSON.stringify({ ...valid(), iat: now() + 3600 })), 'invalid_token'],
    ['iat as a string', () => hmacToken('{"alg":"HS256"}', JSON.stringify({ ...valid(), iat: 'now' })), 'invalid_token'],
    ['exp as an object', () => hmacToken('{"alg":"HS256"}', JSON.stringify({ ...claims, exp: { $gt: 0 } })), 'invalid_token'],
    ['broken base64url', () => `${b64({ alg: 'HS256' })}.${b64(valid())}+/=.abc`, 'invalid_token'],
    ['header not JSON', () => `${b64('not json')}.${b64(valid())}.abc`, 'invalid_token'],
    ['header a JSON array', () => `${b64('["HS256"]')}.${b64(valid())}.abc`, 'invalid_token'],
    ['trailing segment', () => `${signSession(claims)}.extra`, 'invalid_token'],
    ['two segments', () => signSession(claims).split('.').slice(0, 2).join('.'), 'invalid_token'],
    ['JSON-serialised JWS', () => JSON.stringify({ payload: b64(valid()), signatures: [{ protected: b64({ alg: 'HS256' }), signature: 'abc' }] }), 'invalid_token'],
    ['JWT over 8 KiB', () => signSession({ ...claims, pad: 'x'.repeat(9000) }), 'invalid_token'],
    ['signature of another secret', () => signSession(claims, { key: 'x'.repeat(48) }), 'invalid_token'],
    ['email with Cyrillic look-alike', () => signSession({ ...claims, email: 'аdmin@example.com' }), 'email_missing'],
    ['email with right-to-left mark', () => signSession({ ...claims, email: 'admin\u200f@example.com' }), 'email_missing'],
    ['email with CR/LF', () => signSession({ ...claims, email: 'eve@example.com\r\nX-Injected: 1' }), 'email_missing'],
    ['email with display name', () => signSession({ ...claims, email: '"Eve" <eve@example.com>' }), 'email_missing'],
    ['email with several @', () => signSession({ ...claims, email: 'eve@evil.com@example.com' }), 'email_missing'],
    ['email as an array', () => signSession({ ...claims, email: ['eve@example.com'] }), 'email_missing'],
    ['email with KELVIN SIGN that lower-cases to k', () => signSession({ ...claims, email: '\u212Aate@example.com' }), 'email_missing'],
    ['email with a trailing NO-BREAK SPACE', () => signSession({ ...claims, email: 'kate@example.com\u00A0' }), 'email_missing'],
    ['email with a leading BYTE ORDER MARK', () => signSession({ ...claims, email: '\uFEFFkate@example.com' }), 'email_missing'],
    ['email with an IDEOGRAPHIC SPACE', () => signSession({ ...claims, email: 'kate@example.com\u3000' }), 'email_missing'],
    ['email with a LINE SEPARATOR', () => signSession({ ...claims, email: '\u2028kate@example.com' }), 'email_missing'],
    ['email with a trailing tab', () => signSession({ ...claims, email: 'kate@example.com\t' }), 'email_missing'],
    ['exp of 1e400 (parses as Infinity)', () => hmacToken('{"alg":"HS256"}', `{"sub":"a","email":"eve@example.com","exp":1e400}`), 'invalid_token'],
    ['exp in the year 10000', () => hmacToken('{"alg":"HS256"}', JSON.stringify({ ...claims, exp: 253_402_300_800 })), 'invalid_token'],
    ['exp of 1e308', () => hmacToken('{"alg":"HS256"}', JSON.stringify({ ...claims, exp: 1e308 })), 'invalid_token'],
    ['nbf of -1e400 (parses as -Infinity)', () => hmacToken('{"alg":"HS256"}', `{"sub":"a","email":"eve@example.com","exp":${now() + 600},"nbf":-1e400}`), 'invalid_token'],
    ['iat negative', () => hmacToken('{"alg":"HS256"}', JSON.stringify({ ...valid(), iat: -5 })), 'invalid_token']
  ])
})

t.test('user directory: subjects that climb out of their own record', async t => {
  const { createServer } = await import('node:http')
  const asked: string[] = []
  const directory = createServer((request, response) => {
    asked.push(request.url ?? '')
    response.writeHead(200, { 'content-type': 'application/json' }).end('{"email":"admin@example.com"}')
  })
  await new Promise<void>(resolve => directory.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { directory.closeAllConnections(); directory.close() })
  const { port } = directory.address() as { port: number }
  const bySubject = (sub: string) => () => signSession({ sub })
  await expectAll(t, { USER_LOOKUP_URL: `http://127.0.0.1:${port}/v1/users/{sub}` }, [
    ['subject ".." (the directory\'s parent)', bySubject('..'), 'email_missing'],
    ['subject "." (the user list)', bySubject('.'), 'email_missing'],
    ['subject "%2e%2e" (decoded by the directory)', bySubject('%2e%2e'), 'email_missing'],
    ['subject "%2E%2e" (mixed case)', bySubject('%2E%2e'), 'email_missing'],
    ['subject "..\\admin" (backslash)', bySubject('..\\admin'), 'email_missing'],
    ['subject "victim/email" (a sub-resource)', bySubject('victim/email'), 'email_missing']
  ])
  t.same(asked, [], 'the directory was never asked')
})

t.test('configuration that would let anyone sign sessions is refused at start-up', async t => {
  const problems = (env: Record<string, string>): string => {
    try {
      loadConfig({ HUBSPOT_ACCESS_TOKEN: 'x', ...env })
      return ''
    } catch (error) {
      return error instanceof ConfigError ? error.problems.join('\n') : 'not a ConfigError'
    }
  }
  t.match(problems({ JWT_SECRET: 'demo-only-session-secret-never-use-in-production' }), /published in this repository/, 'the compose demo secret')
  t.match(problems({ JWT_SECRET: 'secret' }), /at least 32 bytes/, 'a short secret')
  t.match(problems({ JWT_JWKS_URL: 'http://idp.example/jwks.json' }), /JWT_JWKS_URL: must use https/, 'a JWKS over plain http')
})

t.test('RSA public-key service: algorithm confusion and brought-along keys', async t => {
  const asSecret = (secret: string | Buffer) => () => hmacToken('{"alg":"HS256","typ":"JWT"}', JSON.stringify(valid()), secret)
  await expectAll(t, { JWT_SECRET: undefined, JWT_PUBLIC_KEY: rsaPublicPem }, [
    ['HS256 signed with the RSA public key PEM', asSecret(rsaPublicPem), 'invalid_token'],
    ['HS256 signed with the RSA public key DER', asSecret(rsa.publicKey.export({ type: 'spki', format: 'der' })), 'invalid_token'],
    ['HS256 signed with the RSA public key as JWK', asSecret(JSON.stringify(rsaJwk)), 'invalid_token'],
    ['embedded jwk header with the attacker key', () => rsaToken({ alg: 'RS256', jwk: attackerJwk }, valid(), attackerPrivatePem), 'invalid_token'],
    ['jku header pointing elsewhere', () => rsaToken({ alg: 'RS256', jku: 'https://evil.example.com/jwks.json', kid: 'attacker' }, valid(), attackerPrivatePem), 'invalid_token'],
    ['x5u header pointing elsewhere', () => rsaToken({ alg: 'RS256', x5u: 'https://evil.example.com/cert.pem' }, valid(), attackerPrivatePem), 'invalid_token'],
    ['x5c header with the attacker key', () => rsaToken({ alg: 'RS256', x5c: [attackerCertLike] }, valid(), attackerPrivatePem), 'invalid_token'],
    ['iss mismatch is not checked unless configured, but a bad signature still fails', () => rsaToken({ alg: 'RS256' }, { ...valid(), iss: 'https://evil' }, attackerPrivatePem), 'invalid_token']
  ])
})

t.test('EC public-key service: HS256 with the EC public key as secret', async t => {
  await expectAll(t, { JWT_SECRET: undefined, JWT_PUBLIC_KEY: ecPublicPem }, [
    ['HS256 signed with the EC public key PEM', () => hmacToken('{"alg":"HS256"}', JSON.stringify(valid()), ecPublicPem), 'invalid_token'],
    ['HS256 signed with the EC public key JWK', () => hmacToken('{"alg":"HS256"}', JSON.stringify(valid()), JSON.stringify(ec.publicKey.export({ format: 'jwk' }))), 'invalid_token']
  ])
})

t.test('JWKS service: hostile kids never reach the file system, the network or a database', async t => {
  const jwks = await startJwksServer(t, [rsaJwk])
  await expectAll(t, { JWT_SECRET: undefined, JWT_JWKS_URL: jwks.url, JWT_JWKS_COOLDOWN_S: '3600' }, [
    ['kid that is a path', () => rsaToken({ alg: 'RS256', kid: '../../../../etc/passwd' }, valid(), attackerPrivatePem), 'invalid_token'],
    ['kid that is a URL', () => rsaToken({ alg: 'RS256', kid: 'https://evil.example.com/key' }, valid(), attackerPrivatePem), 'invalid_token'],
    ['kid that is SQL-ish', () => rsaToken({ alg: 'RS256', kid: "' OR 1=1; DROP TABLE keys; --" }, valid(), attackerPrivatePem), 'invalid_token'],
    ['kid of 10 KB', () => rsaToken({ alg: 'RS256', kid: 'k'.repeat(10_000) }, valid(), attackerPrivatePem), 'invalid_token'],
    ['kid that is a number', () => rsaToken({ alg: 'RS256', kid: 42 }, valid(), attackerPrivatePem), 'invalid_token'],
    ['good kid, attacker signature', () => rsaToken({ alg: 'RS256', kid: 'good' }, valid(), attackerPrivatePem), 'invalid_token'],
    ['HS256 with the JWKS key as secret', () => hmacToken('{"alg":"HS256","kid":"good"}', JSON.stringify(valid()), JSON.stringify(rsaJwk)), 'invalid_token'],
    ['jku header with its own set', () => rsaToken({ alg: 'RS256', kid: 'attacker', jku: 'http://127.0.0.1:1/jwks.json' }, valid(), attackerPrivatePem), 'invalid_token']
  ])
  t.ok(jwks.fetches() <= 1, `the JWKS host was fetched ${jwks.fetches()} time(s) for the whole corpus`)
})

t.test('issuer and audience mismatches, including array audiences', async t => {
  const good = (extra: object) => () => signSession({ ...claims, iss: 'https://idp.example.com/', aud: 'web', ...extra })
  await expectAll(t, { JWT_ISSUER: 'https://idp.example.com/', JWT_AUDIENCE: 'web' }, [
    ['wrong issuer', good({ iss: 'https://idp.example.com.evil.com/' }), 'invalid_token'],
    ['issuer differing by a trailing slash', good({ iss: 'https://idp.example.com' }), 'invalid_token'],
    ['issuer as an array', good({ iss: ['https://idp.example.com/'] }), 'invalid_token'],
    ['audience array without ours', good({ aud: ['mobile', 'admin'] }), 'invalid_token'],
    ['empty audience array', good({ aud: [] }), 'invalid_token'],
    ['audience as a number', good({ aud: 1 }), 'invalid_token'],
    ['no audience', () => signSession({ ...claims, iss: 'https://idp.example.com/' }), 'invalid_token']
  ])
})

t.test('duplicate-key detector', async t => {
  t.equal(hasDuplicateKeys('{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}'), false, 'same key in different objects is fine')
  t.equal(hasDuplicateKeys('{"a":1,"b":2,"a":3}'), true)
  t.equal(hasDuplicateKeys('{"o":{"x":1,"x":2}}'), true, 'nested')
  t.equal(hasDuplicateKeys('{"s":"a\\"b","s\\"":1,"t":"{\\"a\\":1,\\"a\\":2}"}'), false, 'escaped quotes and JSON inside strings')
  t.equal(hasDuplicateKeys('{"arr":["a","a"]}'), false, 'array values are not keys')
})
