import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createCacheCrypto } from '../../src/tokens/cache-crypto.js'
import { defaultPendingForgetsFile, PendingForgets } from '../../src/tokens/pending-forgets.js'
import { ACCESS_TOKEN, baseEnv, bearer, manualClock, signSession, startEmulator, startService, until, type RunningService } from '../helper.js'
import { SHARED_REDIS_URL, redisScope, redisSkipReason } from '../redis-helper.js'
import { sharedRedisThroughProxy } from '../tcp-proxy.js'

/** Logouts that could not reach Redis outlive a restart: they are kept in a file and replayed. */

const skip = await redisSkipReason()
const HOUR_MS = 3_600_000

async function scratchDir (t: { teardown: (fn: () => unknown) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'chat-token-pending-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

t.test('a pending logout is kept as its keyed email hash only, survives a new instance, and is dropped once older than the cache TTL', async t => {
  const file = join(await scratchDir(t), 'logouts.log')
  const clock = manualClock()
  const warnings: Error[] = []
  const options = { file, maxAgeMs: 6 * HOUR_MS, maxEntries: 100, clock, onFileError: (error: Error) => { warnings.push(error) } }
  const hash = createCacheCrypto(ACCESS_TOKEN).emailHash('ada@example.com')
  const first = new PendingForgets(options)
  await first.add(hash)
  const text = await readFile(file, 'utf8')
  t.equal(text, `${hash} ${clock.now()}\n`)
  t.notOk(text.includes('ada'), 'the email is not in the file')

  clock.advance(6 * HOUR_MS - 1)
  const restarted = new PendingForgets(options)
  t.same(restarted.list().map(entry => entry.hash), [hash], 'a new instance reads it back')
  await restarted.done(restarted.list())
  t.equal(restarted.size, 0)
  await t.rejects(readFile(file, 'utf8'), { code: 'ENOENT' }, 'the file goes once nothing is pending')

  await first.add(hash)
  clock.advance(6 * HOUR_MS + 1)
  t.same(new PendingForgets(options).list(), [], 'older than the cache TTL: every token it could forget has expired')
  t.same(warnings, [])
})

t.test('a logged-out email logged out again while its replay was under way stays pending', async t => {
  const file = join(await scratchDir(t), 'logouts.log')
  const clock = manualClock()
  const pending = new PendingForgets({ file, maxAgeMs: HOUR_MS, maxEntries: 100, clock, onFileError: () => {} })
  await pending.add('h1')
  const replaying = pending.list()
  clock.advance(1)
  await pending.add('h1')
  await pending.done(replaying)
  t.same(pending.list().map(entry => entry.hash), ['h1'])
  t.match(await readFile(file, 'utf8'), /^h1 \d+\n$/, 'the later line is still in the file')
})

t.test('a file that cannot be written: one warning, and the logouts are kept in memory', async t => {
  const dir = await scratchDir(t)
  const warnings: Error[] = []
  const pending = new PendingForgets({ file: join(dir, 'missing-dir', 'logouts.log'), maxAgeMs: HOUR_MS, maxEntries: 100, clock: manualClock(), onFileError: error => { warnings.push(error) } })
  await pending.add('h1')
  await pending.add('h2')
  t.equal(warnings.length, 1)
  t.same(pending.list().map(entry => entry.hash), ['h1', 'h2'])
})

t.test('a corrupt line is skipped, the others are read', async t => {
  const file = join(await scratchDir(t), 'logouts.log')
  const clock = manualClock()
  await writeFile(file, `h1 ${clock.now()}\nnot a line\nh2 ${clock.now()}`)
  const pending = new PendingForgets({ file, maxAgeMs: HOUR_MS, maxEntries: 100, clock, onFileError: () => {} })
  t.same(pending.list().map(entry => entry.hash), ['h1', 'h2'])
})

t.test('a replica restarted during a Redis outage still replays the logout it took meanwhile, and the other replica stops serving the token', { skip }, async t => {
  const scope = redisScope(t)
  const { proxy, url: viaProxy } = await sharedRedisThroughProxy(t)
  // The default file for this Redis and prefix, as production derives it.
  const file = defaultPendingForgetsFile(viaProxy, scope.prefix)
  t.teardown(() => rm(file, { force: true }))

  const emulator = await startEmulator(t, { rateLimit: { max: 10_000, intervalMs: 1000 } })
  const env = (redisUrl: string): ReturnType<typeof baseEnv> => baseEnv(emulator, { REDIS_URL: redisUrl, HUBSPOT_RATE_LIMIT: '10000/1s', RATE_LIMIT_MAX: '100000' })
  const ada = bearer(signSession({ sub: 'ada', email: 'ada@example.com' }))
  // A reaches Redis through the proxy; B directly. Both share the cache.
  const a = await startService(t, env(viaProxy), { redisKeyPrefix: scope.prefix })
  const b = await startService(t, env(SHARED_REDIS_URL), { redisKeyPrefix: scope.prefix })
  const cached = (await a.get('/chat-token', ada)).json().token
  t.equal((await b.get('/chat-token', ada)).json().token, cached, 'shared before the outage')

  proxy.setMode({ kind: 'closed' })
  const redisCheck = async (service: RunningService): Promise<unknown> => (await service.get('/readyz')).json().checks
  await until('A sees Redis unreachable', async () => (await redisCheck(a) as { redis?: string }).redis === 'degraded')
  t.equal((await a.send('DELETE', '/chat-token', ada)).status, 204, 'the logout is answered while Redis is unreachable')
  t.match(await readFile(file, 'utf8'), /^\S+ \d+\n$/, 'and kept in the file')
  // A goes away before Redis is back: whatever it held in memory is gone.
  await a.app.close()

  proxy.setMode({ kind: 'pass' })
  t.equal((await b.get('/chat-token', ada)).json().token, cached, 'until the logout reaches Redis, B still has the token')
  await startService(t, env(viaProxy), { redisKeyPrefix: scope.prefix })
  await until('the restarted replica replays the logout', async () => (await b.get('/chat-token', ada)).json().token !== cached)
  t.pass('B no longer hands out the token logged out of during the outage')
  await until('the file is emptied once replayed', async () => await readFile(file, 'utf8').then(() => false, () => true))
  t.pass('nothing is left pending')
})
