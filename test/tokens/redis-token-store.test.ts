import t from 'tap'
import type { Env } from '../../src/config/types.js'
import { createCacheCrypto } from '../../src/tokens/cache-crypto.js'
import { ACCESS_TOKEN, baseEnv, bearer, build, signSession, startEmulator, until } from '../helper.js'
import { SHARED_REDIS_URL, redisScope, redisSkipReason } from '../redis-helper.js'

/** The shared cache and single-flight across replicas, against a real Redis. */

const skip = await redisSkipReason()
const roomy = { accessTokens: [ACCESS_TOKEN, 'rotated-access-token'], rateLimit: { max: 10_000, intervalMs: 1000 } }

function env (emulator: { url: string }, overrides: Env = {}): Env {
  return baseEnv(emulator as never, { REDIS_URL: SHARED_REDIS_URL, HUBSPOT_RATE_LIMIT: '10000/1s', RATE_LIMIT_MAX: '100000', ...overrides })
}

function session (email: string): Record<string, string> {
  return bearer(signSession({ sub: email, email }))
}

t.test('two replicas, 200 concurrent requests for one identity: exactly one HubSpot call', { skip }, async t => {
  const scope = redisScope(t)
  const emulator = await startEmulator(t, { ...roomy, latencyMs: 150 })
  const [a, b] = await Promise.all([0, 1].map(() => build(t, env(emulator), { redisKeyPrefix: scope.prefix })))
  const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? a! : b!).get('/chat-token', session('ada@example.com'))))
  t.same(new Set(answers.map(answer => answer.status)), new Set([200]))
  t.equal(new Set(answers.map(answer => answer.json().token)).size, 1, 'everyone got the one token')
  t.equal(emulator.calls().length, 1)
})

t.test('a DELETE through one replica is seen by the other', { skip }, async t => {
  const scope = redisScope(t)
  const emulator = await startEmulator(t, roomy)
  const [a, b] = await Promise.all([0, 1].map(() => build(t, env(emulator), { redisKeyPrefix: scope.prefix })))
  const minted = (await a!.get('/chat-token', session('ada@example.com'))).json().token
  t.equal((await b!.get('/chat-token', session('ada@example.com'))).json().token, minted, 'shared cache')
  t.equal((await a!.send('DELETE', '/chat-token', session('ada@example.com'))).status, 204)
  const after = (await b!.get('/chat-token', session('ada@example.com'))).json().token
  t.not(after, minted)
  t.equal(emulator.calls().length, 2)
})

t.test('a lock holder that dies mid-call: one waiter takes over once the lock expires', { skip }, async t => {
  const scope = redisScope(t)
  const emulator = await startEmulator(t, roomy)
  const [a, b] = await Promise.all([0, 1].map(() => build(t, env(emulator), { redisKeyPrefix: scope.prefix })))
  // A holder that took the lock and vanished: a lock with no value behind it and nobody to release it.
  const hash = createCacheCrypto(ACCESS_TOKEN).emailHash('ada@example.com')
  await scope.redis.set(`${scope.prefix}lock:${hash}`, 'dead-replica', 'PX', 600)
  const started = Date.now()
  const answers = await Promise.all([a!, b!, a!, b!].map(service => service.get('/chat-token', session('ada@example.com'))))
  t.same(answers.map(answer => answer.status), [200, 200, 200, 200])
  t.ok(Date.now() - started >= 550, 'they waited for the dead holder\'s lock to expire')
  t.ok(Date.now() - started < 2000, 'and no longer than a poll after it')
  t.equal(emulator.calls().length, 1, 'exactly one waiter took over')
  t.equal(await scope.redis.exists(`${scope.prefix}lock:${hash}`), 0, 'and released the lock')
})

t.test('when the holder\'s HubSpot call fails, waiters on other replicas answer the same error', { skip }, async t => {
  const scope = redisScope(t)
  const emulator = await startEmulator(t, { ...roomy, latencyMs: 200 })
  emulator.setFaults({ sequence: [{ kind: 'status', status: 503 }] })
  const [a, b] = await Promise.all([0, 1].map(() => build(t, env(emulator, { HUBSPOT_MAX_RETRIES: '0' }), { redisKeyPrefix: scope.prefix })))
  // The failure reaches waiters as a notice: both replicas must be listening before the race starts.
  await until('both replicas listen for fill notices', async () => {
    const [, listeners] = await scope.redis.pubsub('NUMSUB', `${scope.prefix}filled`) as [string, number]
    return Number(listeners) >= 2
  })
  const answers = await Promise.all([a!, b!, b!].map(service => service.get('/chat-token', session('ada@example.com'))))
  t.same(answers.map(answer => answer.status), [503, 503, 503])
  t.ok(answers.every(answer => answer.headers['retry-after'] !== undefined), 'with Retry-After')
  t.equal(emulator.calls().length, 1, 'the failure was not retried once per waiter')
})

t.test('nothing readable lands in Redis: hashed keys, sealed values bound to their key', { skip }, async t => {
  const scope = redisScope(t)
  const emulator = await startEmulator(t, roomy)
  const service = await build(t, env(emulator), { redisKeyPrefix: scope.prefix })
  const people = ['ada.lovelace@example.com', 'grace.hopper@example.org']
  const tokens = await Promise.all(people.map(async email => (await service.get('/chat-token', bearer(signSession({ sub: email, email, given_name: 'Secretname' })))).json().token as string))
  const keys = await scope.keys()
  const tokenKeys = keys.filter(key => key.startsWith(`${scope.prefix}tok:`))
  t.equal(tokenKeys.length, 2)
  const crypto = createCacheCrypto(ACCESS_TOKEN)
  const readable = [...people, ...people.map(email => email.split('@')[0]!), ...tokens, 'Secretname']
  for (const key of keys) {
    for (const secret of readable) t.notOk(key.includes(secret), `key ${key} does not contain ${secret}`)
    const type = await scope.redis.type(key)
    const values = type === 'string'
      ? [await scope.redis.getBuffer(key)]
      : type === 'zset' ? (await scope.redis.zrange(key, 0, -1)).map(member => Buffer.from(member)) : []
    for (const value of values) {
      for (const secret of readable) t.notOk(value!.includes(secret), `value of ${key} does not contain ${secret}`)
    }
  }
  for (const [i, email] of people.entries()) {
    const key = `${scope.prefix}tok:${crypto.emailHash(email)}`
    const sealed = (await scope.redis.getBuffer(key))!
    t.ok(sealed.length > 12 + 16, 'IV, ciphertext, tag')
    t.equal(crypto.open(key, sealed)?.token, tokens[i], 'opens under its own key')
    const otherKey = `${scope.prefix}tok:${crypto.emailHash(people[1 - i]!)}`
    t.equal(crypto.open(otherKey, sealed), undefined, 'a value copied under another key does not open')
    t.equal(createCacheCrypto('rotated-access-token').open(key, sealed), undefined, 'nor under another access token')
    t.ok(await scope.redis.pttl(key) > 21_000_000, 'expires with TOKEN_CACHE_TTL_S (6 h by default)')
  }
})

t.test('rotating the HubSpot access token invalidates the shared cache', { skip }, async t => {
  const scope = redisScope(t)
  const emulator = await startEmulator(t, roomy)
  const before = await build(t, env(emulator), { redisKeyPrefix: scope.prefix })
  const after = await build(t, env(emulator, { HUBSPOT_ACCESS_TOKEN: 'rotated-access-token' }), { redisKeyPrefix: scope.prefix })
  const old = (await before.get('/chat-token', session('ada@example.com'))).json().token
  t.not((await after.get('/chat-token', session('ada@example.com'))).json().token, old)
  t.equal(emulator.calls().length, 2)
})

t.test('the per-caller limit is shared by the replicas through Redis', { skip }, async t => {
  const scope = redisScope(t)
  const emulator = await startEmulator(t, roomy)
  const [a, b] = await Promise.all([0, 1].map(() => build(t, env(emulator, { RATE_LIMIT_MAX: '4' }), { redisKeyPrefix: scope.prefix })))
  const ada = session('ada@example.com')
  for (const service of [a!, b!, a!, b!]) t.equal((await service.get('/chat-token', ada)).status, 200)
  const limited = await a!.get('/chat-token', ada)
  t.equal(limited.status, 429)
  t.equal(limited.json().code, 'rate_limited')
  t.ok(Number(limited.headers['retry-after']) > 0)
  t.equal((await b!.get('/chat-token', ada)).status, 429)
})

t.test('readiness reports Redis as ok while it is reachable', { skip }, async t => {
  const scope = redisScope(t)
  const service = await build(t, baseEnv(undefined, { REDIS_URL: SHARED_REDIS_URL }), { redisKeyPrefix: scope.prefix })
  const ready = await service.get('/readyz')
  t.equal(ready.status, 200)
  t.match(ready.json(), { status: 'ready', checks: { redis: 'ok' } })
})
