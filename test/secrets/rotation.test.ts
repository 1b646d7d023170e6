import { generateKeyPairSync } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { PUBLISHED_DEMO_SECRETS } from '../../src/config/jwt-settings.js'
import { createCacheCrypto } from '../../src/tokens/cache-crypto.js'
import { baseEnv, bearer, captureLogs, type RunningService, signSession, startEmulator, startService, until } from '../helper.js'
import { SHARED_REDIS_URL, redisScope, redisSkipReason } from '../redis-helper.js'
import { startServiceProcess } from '../service-process.js'
import { startLoad } from './load-loop.js'
import { replaceFile, secretDir } from './secret-files.js'

/**
 * Each `_FILE` secret rotated while a steady loop of requests runs against the service: the file is
 * rewritten (renamed into place), the replicas pick it up from the directory watch, and not one
 * request fails. The figures (requests answered while each rotation was under way) are printed.
 */

const redisSkip = await redisSkipReason()
t.setTimeout(120_000)

const ROTATED = 'secret rotated: new requests use the new value'
const REFUSED = 'secret rotation refused: the new value is not usable, the previous one stays in use'
const load = {
  RATE_LIMIT_MAX: '1000000',
  TOKEN_MINT_LIMIT: '1000/1h',
  HUBSPOT_RATE_LIMIT: '10000/1s',
  MAX_EVENT_LOOP_DELAY_MS: '0',
  LOG_LEVEL: 'info'
}

type Logs = ReturnType<typeof captureLogs>
const count = (logs: Logs, msg: string): number => logs.lines().filter(line => line.msg === msg).length
const everyReplicaSays = (logs: Logs[], msg: string, times = 1): Promise<void> =>
  until(`every replica logged "${msg}" ${times} time(s)`, () => logs.every(one => count(one, msg) >= times))

async function readiness (t: Test, service: RunningService): Promise<Record<string, unknown>> {
  const answer = await service.get('/readyz')
  t.equal(answer.status, 200, 'readiness stays 200')
  return answer.json().checks as Record<string, unknown>
}

t.test('HubSpot token: the new one takes over for new calls, calls in flight finish with the old, the cache stays readable', { skip: redisSkip }, async t => {
  const OLD = 'hubspot-token-before-rotation'
  const NEW = 'hubspot-token-after-rotation'
  const scope = redisScope(t)
  // Every call takes 100 ms at HubSpot, so some are in flight when the file changes.
  const emulator = await startEmulator(t, { accessTokens: [OLD, NEW], latencyMs: 100, rateLimit: { max: 100_000, intervalMs: 1000 } })
  const file = join(secretDir(t), 'hubspot-access-token')
  replaceFile(file, `${OLD}\n`)
  const env = baseEnv(emulator, { ...load, HUBSPOT_ACCESS_TOKEN: undefined, HUBSPOT_ACCESS_TOKEN_FILE: file, REDIS_URL: SHARED_REDIS_URL })
  const logs = [captureLogs(), captureLogs()]
  const services = await Promise.all(logs.map(one => startService(t, env, { redisKeyPrefix: scope.prefix, logStream: one.stream })))
  const returning = Array.from({ length: 8 }, (_, i) => bearer(signSession({ sub: `returning-${i}`, email: `returning.${i}@example.com` })))
  for (const session of returning) t.equal((await services[0]!.get('/chat-token', session)).status, 200)

  const loop = startLoad(6, n => services[n % 2]!.get('/chat-token', n % 3 === 0
    ? bearer(signSession({ sub: `new-${n}`, email: `new.${n}@example.com` }))
    : returning[n % returning.length]!))
  await until('the load runs', () => loop.answered() >= 30)
  const before = loop.answered()
  replaceFile(file, `${NEW}\n`)
  await everyReplicaSays(logs, ROTATED)
  // Calls sent with the old token before the replicas switched finish; then the old token is revoked.
  await loop.drained()
  emulator.configure({ accessTokens: [NEW] })
  const during = loop.answered() - before
  await until('the load runs on the new token alone', () => loop.answered() >= before + during + 30)
  await loop.stop()

  const calls = emulator.calls()
  const old = calls.filter(call => call.authorization === `Bearer ${OLD}`)
  const fresh = calls.filter(call => call.authorization === `Bearer ${NEW}`)
  t.comment(`HubSpot token rotation: ${loop.answered()} requests, ${during} answered while it was under way, ${loop.failures.length} failed; HubSpot calls ${old.length} with the old token, ${fresh.length} with the new`)
  t.same(loop.failures, [], 'no request failed')
  t.ok(fresh.length > 0, 'new calls carry the new token')
  t.equal(calls.filter(call => call.status === 401).length, 0, 'HubSpot never refused a token')
  for (const i of returning.keys()) {
    const minted = calls.filter(call => (call.body as { email?: string }).email === `returning.${i}@example.com`).length
    t.equal(minted, 1, `returning.${i} was minted once: the cache stayed readable across the rotation`)
  }
  for (const service of services) t.equal((await readiness(t, service)).hubspot, 'ok')
})

t.test('JWT_SECRET_FILE: old and new verify together while the identity provider switches; unusable rotations are refused', async t => {
  const OLD = 'session-secret-before-the-rotation-0123456789'
  const NEW = 'session-secret-after-the-rotation-9876543210'
  const emulator = await startEmulator(t)
  const file = join(secretDir(t), 'session-secret')
  replaceFile(file, OLD)
  const env = baseEnv(emulator, { ...load, JWT_SECRET: undefined, JWT_SECRET_FILE: file })
  const logs = [captureLogs(), captureLogs()]
  const services = await Promise.all(logs.map(one => startService(t, env, { logStream: one.stream })))
  let signingKey = OLD
  const loop = startLoad(4, n => services[n % 2]!.get('/chat-token', bearer(signSession({ sub: `user-${n % 16}`, email: `user.${n % 16}@example.com` }, { key: signingKey }))))
  await until('the load runs', () => loop.answered() >= 30)

  // 1. The new secret is added (newest first); only then does the identity provider sign with it.
  let mark = loop.answered()
  replaceFile(file, `${NEW},${OLD}`)
  await everyReplicaSays(logs, ROTATED)
  signingKey = NEW
  await until('sessions signed with the new secret are served', () => loop.answered() >= mark + 30)
  const both = loop.answered() - mark

  // 2. Once no session signed with the old secret is left, it is taken out.
  mark = loop.answered()
  replaceFile(file, NEW)
  await everyReplicaSays(logs, ROTATED, 2)
  await until('the load runs on the new secret alone', () => loop.answered() >= mark + 30)
  const alone = loop.answered() - mark
  const oldSession = bearer(signSession({ sub: 'late', email: 'late@example.com' }, { key: OLD }))
  for (const service of services) t.equal((await service.get('/chat-token', oldSession)).status, 401, 'the old secret no longer verifies')

  // 3. Rotations that would not pass at start-up are refused, and the secret in use stays.
  for (const [bad, why] of [['too-short', /must be at least 32 bytes/], [`${NEW},${[...PUBLISHED_DEMO_SECRETS][0]!}`, /secret 2 of 2 is the demo secret/]] as const) {
    const refusedBefore = count(logs[0]!, REFUSED)
    replaceFile(file, bad)
    await everyReplicaSays(logs, REFUSED, refusedBefore + 1)
    const line = logs[0]!.lines().filter(entry => entry.msg === REFUSED).at(-1)!
    t.match(line, { setting: 'JWT_SECRET_FILE', problems: [why] })
    t.notMatch(JSON.stringify(line), bad.split(',')[0]!, 'the refused value is not logged')
    t.match(await readiness(t, services[0]!), { secrets: 'rotation_refused' })
  }
  replaceFile(file, NEW)
  await until('the file is usable again', async () => (await readiness(t, services[0]!)).secrets === 'ok')
  await loop.stop()
  t.comment(`JWT secret rotation: ${loop.answered()} requests, ${both} while both secrets verified, ${alone} after the old one was taken out, ${loop.failures.length} failed`)
  t.same(loop.failures, [], 'no request failed')
})

t.test('JWT_PUBLIC_KEY_FILE: several PEM blocks verify together; a key of another type is refused', async t => {
  const pair = (): { publicPem: string; privatePem: string } => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    return { publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() }
  }
  const oldKey = pair()
  const newKey = pair()
  const emulator = await startEmulator(t)
  const file = join(secretDir(t), 'session.pem')
  replaceFile(file, oldKey.publicPem)
  const env = baseEnv(emulator, { ...load, JWT_SECRET: undefined, JWT_PUBLIC_KEY_FILE: file, JWT_AUDIENCE: 'chat' })
  const logs = captureLogs()
  const service = await startService(t, env, { logStream: logs.stream })
  let signingKey = oldKey.privatePem
  const sign = (n: number): Record<string, string> => bearer(signSession({ sub: `user-${n % 16}`, email: `user.${n % 16}@example.com`, aud: 'chat' }, { key: signingKey, algorithm: 'ES256' }))
  const loop = startLoad(4, n => service.get('/chat-token', sign(n)))
  await until('the load runs', () => loop.answered() >= 30)

  let mark = loop.answered()
  replaceFile(file, `${newKey.publicPem}${oldKey.publicPem}`)
  await everyReplicaSays([logs], ROTATED)
  signingKey = newKey.privatePem
  await until('sessions signed with the new key are served', () => loop.answered() >= mark + 30)
  const both = loop.answered() - mark
  mark = loop.answered()
  replaceFile(file, newKey.publicPem)
  await everyReplicaSays([logs], ROTATED, 2)
  await until('the load runs on the new key alone', () => loop.answered() >= mark + 30)
  const alone = loop.answered() - mark

  const { publicKey: rsa } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  replaceFile(file, rsa.export({ type: 'spki', format: 'pem' }).toString())
  await everyReplicaSays([logs], REFUSED)
  t.match(logs.lines().find(entry => entry.msg === REFUSED), { setting: 'JWT_PUBLIC_KEY_FILE', problems: [/verifies none of the algorithms in use \(ES256\)/] })
  await until('more load on the kept key', () => loop.answered() >= mark + alone + 20)
  await loop.stop()
  t.comment(`JWT public key rotation: ${loop.answered()} requests, ${both} while both keys verified, ${alone} after the old one was taken out, ${loop.failures.length} failed`)
  t.same(loop.failures, [], 'no request failed')
  const oldSigned = bearer(signSession({ sub: 'late', email: 'late@example.com', aud: 'chat' }, { key: oldKey.privatePem, algorithm: 'ES256' }))
  t.equal((await service.get('/chat-token', oldSigned)).status, 401, 'the old key no longer verifies')
})

t.test('USER_LOOKUP_AUTH_FILE: the directory is asked with the new value from the next lookup on', async t => {
  const OLD = 'Bearer directory-token-before'
  const NEW = 'Bearer directory-token-after'
  let accepted = new Set([OLD, NEW])
  const seen = new Map<string, number>()
  const directory = createServer((req, res) => {
    const authorization = req.headers.authorization ?? ''
    seen.set(authorization, (seen.get(authorization) ?? 0) + 1)
    if (!accepted.has(authorization)) return res.writeHead(401).end()
    const sub = decodeURIComponent(req.url!.split('/').at(-1)!)
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ email: `${sub}@example.com` }))
  })
  await new Promise<void>(resolve => directory.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => { directory.closeAllConnections(); directory.close(resolve) }))
  const emulator = await startEmulator(t)
  const file = join(secretDir(t), 'directory-auth')
  replaceFile(file, OLD)
  const env = baseEnv(emulator, {
    ...load,
    USER_LOOKUP_URL: `http://127.0.0.1:${(directory.address() as AddressInfo).port}/users/{sub}`,
    USER_LOOKUP_AUTH_FILE: file
  })
  const logs = captureLogs()
  const service = await startService(t, env, { logStream: logs.stream })
  const loop = startLoad(4, n => service.get('/chat-token', bearer(signSession({ sub: `person-${n % 24}` }))))
  await until('the load runs', () => loop.answered() >= 30)
  const mark = loop.answered()
  replaceFile(file, NEW)
  await everyReplicaSays([logs], ROTATED)
  await loop.drained()
  accepted = new Set([NEW])
  const during = loop.answered() - mark
  await until('the load runs with the new value alone', () => loop.answered() >= mark + during + 30)
  await loop.stop()
  t.comment(`directory authorization rotation: ${loop.answered()} requests, ${during} while it was under way, ${loop.failures.length} failed; lookups ${seen.get(OLD) ?? 0} with the old value, ${seen.get(NEW) ?? 0} with the new`)
  t.same(loop.failures, [], 'no request failed')
  t.ok((seen.get(NEW) ?? 0) > 0)
})

t.test('CACHE_KEY_FILE: a new key takes over for new entries while the old entries stay readable', { skip: redisSkip }, async t => {
  const K1 = 'cache-key-one-0123456789abcdefghijklmnop'
  const K2 = 'cache-key-two-0123456789abcdefghijklmnop'
  const scope = redisScope(t)
  const emulator = await startEmulator(t, { rateLimit: { max: 100_000, intervalMs: 1000 } })
  const file = join(secretDir(t), 'cache-key')
  replaceFile(file, K1)
  const env = baseEnv(emulator, { ...load, REDIS_URL: SHARED_REDIS_URL, CACHE_KEY_FILE: file })
  const logs = captureLogs()
  const service = await startService(t, env, { redisKeyPrefix: scope.prefix, logStream: logs.stream })
  const returning = Array.from({ length: 8 }, (_, i) => bearer(signSession({ sub: `returning-${i}`, email: `returning.${i}@example.com` })))
  const tokens = new Map<number, unknown>()
  for (const [i, session] of returning.entries()) tokens.set(i, (await service.get('/chat-token', session)).json().token)

  const loop = startLoad(4, n => service.get('/chat-token', n % 3 === 0
    ? bearer(signSession({ sub: `new-${n}`, email: `new.${n}@example.com` }))
    : returning[n % returning.length]!))
  await until('the load runs', () => loop.answered() >= 30)
  const mark = loop.answered()
  replaceFile(file, `${K2},${K1}`)
  await everyReplicaSays([logs], ROTATED)
  await until('the load runs on the new key', () => loop.answered() >= mark + 40)
  await loop.stop()
  t.comment(`cache key rotation: ${loop.answered()} requests, ${loop.answered() - mark} after it, ${loop.failures.length} failed`)
  t.same(loop.failures, [], 'no request failed')

  const calls = emulator.calls()
  for (const i of returning.keys()) {
    t.equal(calls.filter(call => (call.body as { email?: string }).email === `returning.${i}@example.com`).length, 1, `returning.${i} was minted once`)
  }
  const person = (await service.get('/chat-token', bearer(signSession({ sub: 'after', email: 'after@example.com' })))).json()
  t.ok(await scope.redis.exists(`${scope.prefix}tok:${createCacheCrypto(K2).emailHash('after@example.com')}`), 'new entries are named by the new key')
  t.ok(await scope.redis.exists(`${scope.prefix}tok:${createCacheCrypto(K1).emailHash('returning.0@example.com')}`), 'old entries stay where they were')

  // A replica started later with both keys reads both, and a logout forgets the old entry as well.
  const later = await startService(t, baseEnv(emulator, { ...load, LOG_LEVEL: 'silent', REDIS_URL: SHARED_REDIS_URL, CACHE_KEY: `${K2},${K1}` }), { redisKeyPrefix: scope.prefix })
  t.equal((await later.get('/chat-token', returning[0]!)).json().token, tokens.get(0))
  t.equal((await later.get('/chat-token', bearer(signSession({ sub: 'after', email: 'after@example.com' })))).json().token, person.token)
  t.equal((await later.send('DELETE', '/chat-token', returning[0]!)).status, 204)
  t.equal(await scope.redis.exists(`${scope.prefix}tok:${createCacheCrypto(K1).emailHash('returning.0@example.com')}`), 0, 'the logout deleted the entry under the old key')
  t.not((await later.get('/chat-token', returning[0]!)).json().token, tokens.get(0), 'and a new token is minted after it')
})

t.test('the upgrade to CACHE_KEY keeps the cache, and with it a new HubSpot token (a restart) keeps it too', { skip: redisSkip }, async t => {
  const KEY = 'cache-key-for-the-upgrade-0123456789abcdef'
  const OLD = 'hubspot-token-one'
  const NEW = 'hubspot-token-two'
  const scope = redisScope(t)
  const emulator = await startEmulator(t, { accessTokens: [OLD, NEW] })
  const replica = (overrides: Record<string, string>): Promise<RunningService> =>
    startService(t, baseEnv(emulator, { REDIS_URL: SHARED_REDIS_URL, ...overrides }), { redisKeyPrefix: scope.prefix })
  const ada = bearer(signSession({ sub: 'ada', email: 'ada@example.com' }))
  const bob = bearer(signSession({ sub: 'bob', email: 'bob@example.com' }))
  const before = await replica({ HUBSPOT_ACCESS_TOKEN: OLD })
  const adaToken = (await before.get('/chat-token', ada)).json().token
  const upgraded = await replica({ HUBSPOT_ACCESS_TOKEN: OLD, CACHE_KEY: KEY })
  t.equal((await upgraded.get('/chat-token', ada)).json().token, adaToken, 'setting CACHE_KEY keeps what was cached before')
  const bobToken = (await upgraded.get('/chat-token', bob)).json().token
  const rotated = await replica({ HUBSPOT_ACCESS_TOKEN: NEW, CACHE_KEY: KEY })
  t.equal((await rotated.get('/chat-token', bob)).json().token, bobToken, 'a replica started with a new HubSpot token reads the same cache')
  t.equal(emulator.calls().length, 2, 'HubSpot was asked once per person')
})

t.test('SIGHUP re-reads the secret files: in-process without any watch, and a real process keeps running', async t => {
  const OLD = 'hubspot-token-before-sighup'
  const NEW = 'hubspot-token-after-sighup'
  const emulator = await startEmulator(t, { accessTokens: [OLD, NEW] })
  const file = join(secretDir(t), 'hubspot-access-token')
  replaceFile(file, OLD)
  const env = baseEnv(emulator, { HUBSPOT_ACCESS_TOKEN: undefined, HUBSPOT_ACCESS_TOKEN_FILE: file })
  const service = await startService(t, env, { secretFiles: { watchDirectories: false, checkIntervalMs: 3_600_000 } })
  replaceFile(file, NEW)
  await service.app.reloadSecrets()
  t.equal((await service.get('/chat-token', bearer(signSession({ sub: 'ada', email: 'ada@example.com' })))).status, 200)
  t.equal(emulator.calls().at(-1)?.authorization, `Bearer ${NEW}`, 'the next call carries the token read on reload')

  replaceFile(file, OLD)
  const running = await startServiceProcess(t, { ...env, LOG_LEVEL: 'info' } as Record<string, string>)
  replaceFile(file, NEW)
  running.child.kill('SIGHUP')
  await running.line(line => line.msg === 'SIGHUP: reading the secret files')
  await running.line(line => line.msg === ROTATED)
  t.equal((await request(`${running.url}/healthz`)).statusCode, 200, 'SIGHUP does not stop the service')
  t.equal(running.child.exitCode, null)
})
