import t from 'tap'
import { bearer, signSession, startEmulatorProcess, startService, type HttpAnswer } from '../helper.js'
import { redisScope, redisSkipReason } from '../redis-helper.js'
import { redisBudgetEnv } from './redis-budget-env.js'

/**
 * The outbound HubSpot budget shared by two replicas through Redis, under a login storm. It takes both
 * cores: `npm test` runs it once everything else has finished (package.json `testAlone`).
 */

const skip = await redisSkipReason()
t.setTimeout(120_000)

t.test('a 1000-identity storm on two replicas never exceeds HubSpot\'s rolling limit', { skip }, async t => {
  const scope = redisScope(t)
  // HubSpot's 100 per 10 s, scaled down to 100 per second to keep the test short. The emulator runs in
  // its own process so that it counts calls when they arrive, not when this busy process gets to them.
  const emulator = await startEmulatorProcess(t, ['--rate-limit', '100/1s'])
  const timeoutMs = 30_000
  const env = redisBudgetEnv(emulator, { HUBSPOT_RATE_LIMIT: '100/1s', HUBSPOT_TIMEOUT_MS: String(timeoutMs) })
  const [a, b] = await Promise.all([0, 1].map(() => startService(t, env, { redisKeyPrefix: scope.prefix })))
  const sessions = Array.from({ length: 1000 }, (_, i) => bearer(signSession({ sub: `user-${i}`, email: `user.${i}@example.com` })))
  const started = Date.now()
  const answers = await Promise.all(sessions.map(async (headers, i): Promise<HttpAnswer & { ms: number }> => {
    const sent = Date.now()
    const answer = await (i % 2 === 0 ? a! : b!).get('/chat-token', headers)
    return { ...answer, ms: Date.now() - sent }
  }))
  const elapsedS = (Date.now() - started) / 1000
  const ok = answers.filter(answer => answer.status === 200).length
  const refused = answers.filter(answer => answer.status === 503 && Number(answer.headers['retry-after']) > 0).length
  const stats = await emulator.stats()
  t.equal(ok + refused, 1000, 'every answer is 200, or 503 with Retry-After')
  t.equal(stats.rejected429, 0, 'HubSpot never answered 429')
  t.ok(stats.maxInWindow <= 100, `HubSpot saw at most the budget in any window (${stats.maxInWindow})`)
  t.ok(Math.max(...answers.map(answer => answer.ms)) < timeoutMs + 1000, 'no answer came after the deadline')
  t.equal(stats.calls, ok, 'one HubSpot call per token handed out')
  t.comment(`${ok} tokens and ${refused} refusals in ${elapsedS.toFixed(1)} s; theoretical minimum ${(1000 / 100).toFixed(1)} s`)
})
