import t from 'tap'
import type { Env } from '../../src/config/types.js'
import { baseEnv, bearer, signSession, startEmulator, startService, until } from '../helper.js'
import { SHARED_REDIS_URL, redisScope, redisSkipReason } from '../redis-helper.js'
import { raceLogouts } from './logout-race.js'

/** Redis mode, two replicas sharing one Redis: a logout through either wins over every mint in flight. */

const skip = await redisSkipReason()
// Sized to run in well under 20 s on an idle machine; a busy shared one may need several times that.
t.setTimeout(180_000)
const roomy = { rateLimit: { max: 1_000_000, intervalMs: 1000 } }

function env (emulator: { url: string }, overrides: Env = {}): Env {
  return baseEnv(emulator as never, {
    REDIS_URL: SHARED_REDIS_URL,
    HUBSPOT_RATE_LIMIT: '1000000/1s',
    RATE_LIMIT_MAX: '1000000',
    TOKEN_MINT_LIMIT: '1000000/1s',
    // Load shedding would answer 503 when the shared test machine stalls: not what is tested here.
    MAX_EVENT_LOOP_DELAY_MS: '0',
    // A loaded test machine must not turn slow answers into 504s: the race, not the deadline, is tested.
    HUBSPOT_TIMEOUT_MS: '30000',
    ...overrides
  })
}

t.test('a mint in flight on one replica when a DELETE goes through the other: nobody after the DELETE gets its token', { skip }, async t => {
  const scope = redisScope(t)
  const emulator = await startEmulator(t, { ...roomy, latencyMs: 200 })
  const [a, b] = await Promise.all([0, 1].map(() => startService(t, env(emulator), { redisKeyPrefix: scope.prefix })))
  const ada = bearer(signSession({ sub: 'ada', email: 'ada@example.com' }))
  const first = a!.get('/chat-token', ada)
  await until('HubSpot has the first mint', () => emulator.calls().length === 1)
  t.equal((await b!.send('DELETE', '/chat-token', ada)).status, 204)
  // One after the logout on each replica: on A it would join A's flight, on B wait for A's lock.
  const [onA, onB] = await Promise.all([a!.get('/chat-token', ada), b!.get('/chat-token', ada)])
  const before = emulator.calls()[0]!.token
  t.equal((await first).status, 200, 'the request that came before the logout is still answered')
  for (const [name, answer] of [['A', onA], ['B', onB]] as const) {
    t.equal(answer.status, 200)
    t.not(answer.json().token, before, `replica ${name} did not hand out the token minted before the logout`)
  }
  const cached = await b!.get('/chat-token', ada)
  t.not(cached.json().token, before, 'nor did the shared cache keep it')
})

t.test('DELETE raced against mints across two replicas, 1000 times: nobody who asks after a logout gets a token minted before it', { skip }, async t => {
  const scope = redisScope(t)
  const emulator = await startEmulator(t, { ...roomy, latencyMs: 40 })
  const services = await Promise.all([0, 1].map(() => startService(t, env(emulator), { redisKeyPrefix: scope.prefix })))
  const report = await raceLogouts(services, emulator, { lanes: 40, iterations: 25 })
  t.comment(`two replicas, one Redis: ${report.iterations} logouts, ${report.checked} answers after them checked, ${report.violations.length} violations, ${report.hubspotCalls} HubSpot calls`)
  t.equal(report.iterations, 1000)
  t.same(report.violations.slice(0, 5), [], 'no token from before a logout served after it')
  t.same(Object.keys(report.statuses).sort(), ['200', '204'], `statuses ${JSON.stringify(report.statuses)}`)
})
