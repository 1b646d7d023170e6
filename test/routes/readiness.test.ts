import { generateKeyPairSync } from 'node:crypto'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ACCESS_TOKEN, baseEnv, bearer, build, type BuiltService, signSession, startEmulator, startJwksServer, until } from '../helper.js'
import { replaceFile, secretDir } from '../secrets/secret-files.js'

/**
 * /readyz reports what requests already met (HubSpot's last answers, the last JWKS fetch, unusable
 * secret files, Redis) without calling anything itself, and it is 503 only while draining: a
 * dependency's outage degrades a replica, it never takes it out of the load balancer.
 */

interface Readiness {
  status: string
  checks: Record<string, string>
  reasons?: Record<string, string>
}

async function readiness (t: Test, service: BuiltService): Promise<Readiness> {
  const answer = await service.get('/readyz')
  t.equal(answer.status, 200, 'ready (200) whatever the dependencies do')
  return answer.json() as unknown as Readiness
}

let people = 0
const newPerson = (): Record<string, string> => bearer(signSession({ sub: `p${people}`, email: `person.${people++}@example.com` }))

t.test('checks.hubspot: unknown → ok → credentials_refused → unknown after a token rotation → ok; no probe calls HubSpot', async t => {
  const ROTATED = 'hubspot-token-after-rotation'
  const emulator = await startEmulator(t, { accessTokens: [ACCESS_TOKEN] })
  const file = join(secretDir(t), 'hubspot-access-token')
  replaceFile(file, ACCESS_TOKEN)
  const service = await build(t, baseEnv(emulator, { HUBSPOT_ACCESS_TOKEN: undefined, HUBSPOT_ACCESS_TOKEN_FILE: file, HUBSPOT_MAX_RETRIES: '0' }))

  t.match(await readiness(t, service), { status: 'ready', checks: { hubspot: 'unknown', secrets: 'ok' } }, 'nothing known before the first call')
  await service.get('/readyz')
  t.equal(emulator.calls().length, 0, 'probes call nothing')

  t.equal((await service.get('/chat-token', newPerson())).status, 200)
  t.match(await readiness(t, service), { status: 'ready', checks: { hubspot: 'ok' } })

  emulator.configure({ accessTokens: ['someone-else'] })
  t.equal((await service.get('/chat-token', newPerson())).status, 502)
  const refused = await readiness(t, service)
  t.match(refused, { status: 'degraded', checks: { hubspot: 'credentials_refused' }, reasons: { hubspot: /HubSpot answered 401/ } })

  emulator.configure({ accessTokens: [ROTATED] })
  replaceFile(file, ROTATED)
  await until('the new token is read', async () => (await readiness(t, service)).checks.hubspot === 'unknown')
  t.match(await readiness(t, service), { status: 'ready' }, 'what the old token met says nothing about the new one')
  t.equal((await service.get('/chat-token', newPerson())).status, 200, 'the pause after the refusal ends with the new token')
  t.match(await readiness(t, service), { status: 'ready', checks: { hubspot: 'ok' } })
})

t.test('checks.hubspot: unavailable after 5xx or no connection, ok again after the next success', async t => {
  const emulator = await startEmulator(t)
  const service = await build(t, baseEnv(emulator, { HUBSPOT_MAX_RETRIES: '0' }))
  emulator.setFaults({ sequence: [{ kind: 'status', status: 503 }] })
  t.equal((await service.get('/chat-token', newPerson())).status, 503)
  t.match(await readiness(t, service), { status: 'degraded', checks: { hubspot: 'unavailable' }, reasons: { hubspot: /HubSpot answered 503/ } })
  t.equal((await service.get('/chat-token', newPerson())).status, 200)
  t.match(await readiness(t, service), { status: 'ready', checks: { hubspot: 'ok' } })

  const unreachable = await build(t, baseEnv(undefined, { HUBSPOT_MAX_RETRIES: '0' }))
  t.equal((await unreachable.get('/chat-token', newPerson())).status, 503)
  t.match(await readiness(t, unreachable), { status: 'degraded', checks: { hubspot: 'unavailable' }, reasons: { hubspot: /could not reach HubSpot/ } })
})

t.test('checks.jwks: unknown → ok → failed (keys kept, sessions still served) → ok', async t => {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'one', alg: 'ES256', use: 'sig' }
  const jwks = await startJwksServer(t, [jwk])
  const emulator = await startEmulator(t)
  const service = await build(t, baseEnv(emulator, { JWT_SECRET: undefined, JWT_JWKS_URL: jwks.url, JWT_JWKS_COOLDOWN_S: '0', JWT_AUDIENCE: 'chat' }))
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const session = (kid: string): Record<string, string> => bearer(signSession({ sub: 'ada', email: 'ada@example.com', aud: 'chat' }, { key: pem, algorithm: 'ES256', kid }))

  t.match(await readiness(t, service), { status: 'ready', checks: { jwks: 'unknown' } })
  t.equal(jwks.fetches(), 0, 'probes fetch nothing')
  t.equal((await service.get('/chat-token', session('one'))).status, 200)
  t.match(await readiness(t, service), { checks: { jwks: 'ok' } })

  jwks.setStatus(500)
  // An unknown kid makes the service refetch the set, which now fails.
  t.equal((await service.get('/chat-token', session('two'))).status, 401)
  t.match(await readiness(t, service), { status: 'degraded', checks: { jwks: 'failed' }, reasons: { jwks: /JWKS answered 500.*keys fetched before stay in use/ } })
  t.equal((await service.get('/chat-token', session('one'))).status, 200, 'sessions signed with a known key are still served')

  jwks.setStatus(200)
  t.equal((await service.get('/chat-token', session('two'))).status, 401)
  t.match(await readiness(t, service), { status: 'ready', checks: { jwks: 'ok' } })
})

t.test('checks.secrets: rotation_refused while a secret file holds an unusable value, ok once it is fixed', async t => {
  const emulator = await startEmulator(t)
  const file = join(secretDir(t), 'hubspot-access-token')
  replaceFile(file, ACCESS_TOKEN)
  const service = await build(t, baseEnv(emulator, { HUBSPOT_ACCESS_TOKEN: undefined, HUBSPOT_ACCESS_TOKEN_FILE: file }))
  replaceFile(file, 'two words')
  await until('the refusal shows', async () => (await readiness(t, service)).checks.secrets === 'rotation_refused')
  t.match(await readiness(t, service), { status: 'degraded', reasons: { secrets: /HUBSPOT_ACCESS_TOKEN_FILE: the new content is not usable/ } })
  t.equal((await service.get('/chat-token', newPerson())).status, 200, 'the token in use stays')
  replaceFile(file, ACCESS_TOKEN)
  await until('the file is usable again', async () => (await readiness(t, service)).checks.secrets === 'ok')
  t.notOk('secrets' in (await readiness(t, await build(t, baseEnv(emulator)))).checks, 'no secret files, no check')
})

t.test('only draining makes a replica unready, whatever its dependencies say', async t => {
  const lifecycle = { draining: false }
  const service = await build(t, baseEnv(undefined, { HUBSPOT_MAX_RETRIES: '0' }), { lifecycle })
  await service.get('/chat-token', newPerson())
  t.match(await readiness(t, service), { status: 'degraded', checks: { hubspot: 'unavailable' } })
  lifecycle.draining = true
  const draining = await service.get('/readyz')
  t.equal(draining.status, 503)
  t.match(draining.json(), { status: 'draining', checks: { shutdown: 'failing' } })
})
