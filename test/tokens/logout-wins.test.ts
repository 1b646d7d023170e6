import t from 'tap'
import type { Env } from '../../src/config/types.js'
import { baseEnv, bearer, signSession, startEmulator, startService, until } from '../helper.js'
import { raceLogouts } from './logout-race.js'

/** Memory mode (no REDIS_URL): a logout wins over every mint in flight for that person. */

// Sized to run in well under 20 s on an idle machine; a busy shared one may need several times that.
t.setTimeout(180_000)
const roomy = { rateLimit: { max: 1_000_000, intervalMs: 1000 } }

function env (emulator: { url: string }, overrides: Env = {}): Env {
  return baseEnv(emulator as never, {
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

t.test('a GET after a DELETE does not join the mint that was in flight, and that mint does not refill the cache', async t => {
  const emulator = await startEmulator(t, { ...roomy, latencyMs: 200 })
  const service = await startService(t, env(emulator))
  const ada = bearer(signSession({ sub: 'ada', email: 'ada@example.com' }))
  const first = service.get('/chat-token', ada)
  await until('HubSpot has the first mint', () => emulator.calls().length === 1)
  t.equal((await service.send('DELETE', '/chat-token', ada)).status, 204)
  const after = await service.get('/chat-token', ada)
  const before = (await first).json().token
  t.equal((await first).status, 200, 'the request that came before the logout is still answered')
  t.equal(after.status, 200)
  t.not(after.json().token, before, 'the request after the logout got a token of its own')
  const later = (await service.get('/chat-token', ada)).json().token
  t.not(later, before, 'the mint from before the logout did not refill the cache')
  t.equal(later, after.json().token, 'the cache holds the token minted after it')
  t.equal(emulator.calls().length, 2)
})

t.test('DELETE raced against mints, 1200 times: nobody who asks after a logout gets a token minted before it', async t => {
  const emulator = await startEmulator(t, { ...roomy, latencyMs: 40 })
  const service = await startService(t, env(emulator))
  const report = await raceLogouts([service], emulator, { lanes: 40, iterations: 30 })
  t.comment(`memory mode: ${report.iterations} logouts, ${report.checked} answers after them checked, ${report.violations.length} violations, ${report.hubspotCalls} HubSpot calls`)
  t.equal(report.iterations, 1200)
  t.same(report.violations.slice(0, 5), [], 'no token from before a logout served after it')
  t.same(Object.keys(report.statuses).sort(), ['200', '204'], `statuses ${JSON.stringify(report.statuses)}`)
})
