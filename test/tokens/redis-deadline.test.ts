import t from 'tap'
import { baseEnv, bearer, captureLogs, signSession, startEmulator, startService } from '../helper.js'
import { redisScope, redisSkipReason } from '../redis-helper.js'
import { sharedRedisThroughProxy } from '../tcp-proxy.js'

/**
 * A stalled Redis (it takes in commands and answers nothing) while HubSpot hangs: the per-caller limit's
 * Redis call, the cache read and the lock all wait on Redis before the HubSpot call even starts. Each
 * answer must still leave within HUBSPOT_TIMEOUT_MS + 100 ms of the request being read, by the service's
 * own access line.
 */

const skip = await redisSkipReason()
const TIMEOUT_MS = 800
const ALLOWED_OVERRUN_MS = 100

t.test('stalled Redis and a hanging HubSpot: every answer leaves by the deadline', { skip }, async t => {
  const scope = redisScope(t)
  const { proxy, url: viaProxy } = await sharedRedisThroughProxy(t)
  const emulator = await startEmulator(t, { rateLimit: { max: 100_000, intervalMs: 1000 } })
  const logs = captureLogs()
  const service = await startService(t, baseEnv(emulator, {
    LOG_LEVEL: 'info',
    REDIS_URL: viaProxy,
    HUBSPOT_TIMEOUT_MS: String(TIMEOUT_MS),
    HUBSPOT_RATE_LIMIT: '100000/1s',
    MAX_EVENT_LOOP_DELAY_MS: '0'
  }), { redisKeyPrefix: scope.prefix, logStream: logs.stream })

  // Redis turns silent, and HubSpot takes every call in and answers none of them.
  proxy.setMode({ kind: 'silent' })
  emulator.setFaults({ random: { rate: 1, faults: [{ kind: 'hang' }] } })
  const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => service.get('/chat-token', bearer(signSession({ sub: `s${i}`, email: `s${i}@example.com` })))))
  t.same(new Set(answers.map(answer => answer.status)), new Set([504]), 'each request answered 504 upstream_timeout')
  const served = logs.lines().filter(line => line.msg === 'request' && line.path === '/chat-token').map(line => Number(line.ms))
  t.equal(served.length, 12)
  const latest = Math.max(...served)
  t.ok(latest <= TIMEOUT_MS + ALLOWED_OVERRUN_MS, `latest answer ${latest} ms after it was read (≤ ${TIMEOUT_MS} + ${ALLOWED_OVERRUN_MS})`)
  proxy.setMode({ kind: 'pass' })
  emulator.setFaults({})
})
