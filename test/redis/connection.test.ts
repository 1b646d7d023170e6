import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import t from 'tap'
import { REDIS_UNAVAILABLE, connectRedis } from '../../src/redis/connection.js'
import { noServiceEvents } from '../../src/events.js'
import { redisSkipReason, startRedisServer, silentLog } from '../redis-helper.js'
import { until } from '../helper.js'
import { startTcpProxy } from '../tcp-proxy.js'

/** The Redis link's own bookkeeping, against a redis-server of the test's own. */

const skip = await redisSkipReason()

t.test('the background probe finds Redis back even when its timer fires before the suspension ends', { skip }, async t => {
  const redis = await startRedisServer(t)
  // A clock at half speed: every timer fires early by it, as a busy event loop makes timers fire a
  // little early by Date.now(). Before the fix the probe then gave up, and with no traffic nothing
  // ever noticed that Redis was back.
  const start = Date.now()
  const clock = { now: () => start + (Date.now() - start) / 2 }
  const link = await connectRedis({ url: redis.url, log: silentLog, events: noServiceEvents, clock })
  t.teardown(() => link.close())
  t.ok(await link.waitUntilUp(2000), 'connected')
  t.equal(link.isUp(), true)
  redis.freeze()
  t.equal(await link.run(client => client.ping()), REDIS_UNAVAILABLE, 'a frozen Redis times out')
  t.equal(link.isUp(), false, 'and is left alone for a while')
  redis.thaw()
  await until('the probe sees Redis back', () => link.isUp(), 10_000)
  t.pass('seen back without any traffic')
})

t.test('a Redis that evicts is known as such from start-up, though its INFO answers slower than an ordinary command may take', { skip }, async t => {
  const redis = await startRedisServer(t, { args: ['--maxmemory-policy', 'allkeys-lru'] })
  // maxmemory below what an empty Redis already uses: at its limit, as a full cache would be.
  const direct = new Redis(redis.url)
  t.teardown(() => direct.disconnect())
  const used = Number(/used_memory:(\d+)/.exec(await direct.info('memory'))?.[1])
  await direct.config('SET', 'maxmemory', String(Math.floor(used / 2)))
  // Every chunk held 100 ms each way: INFO comes back after 200 ms at least, over the 150 ms an
  // ordinary command gets (and well within a patient one's 1 s, also on a loaded machine). Until the
  // next look, 5 s on, the replica would not keep evicted tokens.
  const { port } = new URL(redis.url)
  const proxy = await startTcpProxy(t, { host: '127.0.0.1', port: Number(port) })
  proxy.setMode({ kind: 'slow', delayMs: 100 })
  const link = await connectRedis({ url: `redis://${proxy.host}:${proxy.port}`, log: silentLog, events: noServiceEvents, clock: { now: Date.now } })
  t.teardown(() => link.close())
  t.ok(await link.waitUntilUp(3000), 'connected')
  t.equal(link.degradation(), 'evicting', 'known once start-up stops waiting')
})

t.test('a REDIS_URL host that does not resolve is logged in words with the host, never the password', async t => {
  const warnings: Array<{ fields: Record<string, unknown>; msg: string }> = []
  const log = { info: () => {}, warn: (fields: Record<string, unknown>, msg: string) => { warnings.push({ fields, msg }) } } as never
  const link = await connectRedis({ url: 'redis://:redis-secret-value@no-such-host.invalid:6379', log, events: noServiceEvents, clock: { now: Date.now } })
  t.teardown(() => link.close())
  await until('the failure is logged', () => warnings.length > 0, 10_000)
  // Reconnects keep failing meanwhile (50, 100, 200 ms apart): still only the transition is logged.
  await sleep(500)
  t.equal(warnings.length, 1, 'one line, not one per reconnect')
  t.match(warnings[0]!.fields.reason, /^the host "no-such-host\.invalid" of REDIS_URL does not resolve \((ENOTFOUND|EAI_AGAIN)\): check the name$/)
  t.notMatch(JSON.stringify(warnings), /redis-secret-value/)
})
