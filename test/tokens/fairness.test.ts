import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { request } from 'undici'
import { baseEnv, bearer, captureLogs, signSession, startEmulator, startEmulatorProcess, startService, type RunningService, until } from '../helper.js'
import { SHARED_REDIS_URL, redisScope, redisSkipReason } from '../redis-helper.js'

/** Whether a few abusive accounts can take the HubSpot budget from everyone else. */

const skip = await redisSkipReason()
t.setTimeout(180_000)

t.test('a miss behind a spent budget is refused at once with Retry-After, not after most of its deadline', async t => {
  const emulator = await startEmulator(t, { rateLimit: { max: 1000, intervalMs: 1000 } })
  // Two calls per 3 s and a 10 s deadline: the third caller's slot (3.3 s away) fits the deadline, not the wait.
  const service = await startService(t, baseEnv(emulator, { HUBSPOT_RATE_LIMIT: '2/3s', HUBSPOT_TIMEOUT_MS: '10000' }))
  for (const n of [1, 2]) t.equal((await service.get('/chat-token', bearer(signSession({ sub: `u${n}`, email: `u${n}@example.com` })))).status, 200)
  const third = await service.get('/chat-token', bearer(signSession({ sub: 'u3', email: 'u3@example.com' })))
  t.equal(third.status, 503)
  t.equal(third.json().code, 'upstream_unavailable')
  const retryAfter = Number(third.headers['retry-after'])
  t.ok(retryAfter >= 2 && retryAfter <= 3, `Retry-After ${retryAfter}: when a slot is within the wait`)
  t.equal(emulator.calls().length, 2)
})

const ABUSERS = 40
const LEGITIMATE = 100
/** Per-caller limit, scaled with HubSpot's window: 4 requests a second per caller. */
const CALLER_MAX = 4
const PACE_MS = 1000 / CALLER_MAX + 10
const MINT_LIMIT = 5

t.test(`${ABUSERS} accounts looping DELETE + GET at their per-caller rate cannot crowd out new people`, { skip }, async t => {
  const scope = redisScope(t)
  // HubSpot's 100 per 10 s scaled to 50 per second; the abusers alone would ask for 80 new tokens a second.
  const emulator = await startEmulatorProcess(t, ['--rate-limit', '50/1s'])
  const env = baseEnv(emulator as never, {
    REDIS_URL: SHARED_REDIS_URL,
    HUBSPOT_RATE_LIMIT: '50/1s',
    RATE_LIMIT_MAX: String(CALLER_MAX),
    RATE_LIMIT_WINDOW_S: '1',
    TOKEN_MINT_LIMIT: `${MINT_LIMIT}/1h`,
    MAX_EVENT_LOOP_DELAY_MS: '0'
  })
  // Each replica's warnings: Redis found unusable under load moves the allowance to each process.
  const logs = [captureLogs(), captureLogs()]
  const services = await Promise.all(logs.map(one => startService(t, { ...env, LOG_LEVEL: 'warn' }, { redisKeyPrefix: scope.prefix, logStream: one.stream })))

  let abusing = true
  const abuserStatuses = new Map<string, number>()
  const mintLimited = new Set<number>()
  /** The distinct tokens each abuser was handed: a cached one comes back the same, a new mint does not. */
  const tokens = Array.from({ length: ABUSERS }, () => new Set<string>())
  async function abuse (n: number): Promise<void> {
    const headers = bearer(signSession({ sub: `abuser-${n}`, email: `abuser.${n}@abuse.example` }, { expiresInS: 600 }))
    for (let i = 0; abusing; i++) {
      const service: RunningService = services[i % 2]!
      const method = i % 2 === 0 ? 'DELETE' : 'GET'
      const answer = await service.send(method, '/chat-token', headers)
      const key = `${method} ${answer.status}`
      abuserStatuses.set(key, (abuserStatuses.get(key) ?? 0) + 1)
      if (method === 'GET') {
        if (answer.status === 200) tokens[n]!.add(answer.json().token as string)
        // The per-caller limit's Retry-After is at most a second; the mint limit's runs to the hour.
        if (answer.status === 429 && Number(answer.headers['retry-after']) > 60) mintLimited.add(n)
      }
      await sleep(PACE_MS)
    }
  }
  const abusers = Promise.all(Array.from({ length: ABUSERS }, (_, n) => abuse(n)))

  // New people arrive once every abuser has used up its allowance and been refused for it.
  await until('every abuser is held at its allowance', () => mintLimited.size === ABUSERS, 60_000)
  const legitimate: Array<{ status: number; ms: number }> = []
  async function arrive (worker: number): Promise<void> {
    for (let i = worker; i < LEGITIMATE; i += 10) {
      const started = performance.now()
      const response = await request(`${services[i % 2]!.url}/chat-token`, { headers: bearer(signSession({ sub: `person-${i}`, email: `person.${i}@example.com` })) })
      await response.body.text()
      legitimate.push({ status: response.statusCode, ms: performance.now() - started })
    }
  }
  await Promise.all(Array.from({ length: 10 }, (_, worker) => arrive(worker)))
  abusing = false
  await abusers

  const calls = await (await request(`${emulator.url}/__emulator/calls`)).body.json() as Array<{ status: number; body?: { email?: string } }>
  const abuserCalls = calls.filter(call => call.body?.email?.endsWith('@abuse.example') === true).length
  const mostTokens = Math.max(...tokens.map(set => set.size))
  const stats = await emulator.stats()
  const served = legitimate.filter(answer => answer.status === 200).length
  const sorted = legitimate.map(answer => answer.ms).sort((a, b) => a - b)
  const p99 = sorted[Math.ceil(sorted.length * 0.99) - 1] ?? NaN
  t.comment(`legitimate: ${served}/${legitimate.length} served, p50 ${sorted[Math.floor(sorted.length / 2)]?.toFixed(0)} ms, p99 ${p99.toFixed(0)} ms`)
  t.comment(`abusers: ${JSON.stringify(Object.fromEntries([...abuserStatuses].sort()))}; HubSpot called ${abuserCalls} times for them; at most ${mostTokens} tokens each; ${mintLimited.size} held at their allowance`)
  t.comment(`HubSpot: ${stats.calls} calls, ${stats.rejected429} answered 429`)
  // While a replica finds Redis unusable (a command over its 150 ms, as on a loaded machine), it counts
  // mints in its own memory: the allowance then holds per replica (docs/design.md, "New tokens per person").
  // Its budget share is then its own too, so a window can hold more than the budget and HubSpot may
  // answer 429 ("When Redis fails"): the figures in a failure say whether that is what happened.
  const redisUnusable = logs.flatMap(one => one.lines()).filter(line => /^redis unavailable/.test(String(line.msg)))
  const allowed = redisUnusable.length === 0 ? MINT_LIMIT : MINT_LIMIT * (1 + services.length)
  const unusable = `Redis found unusable ${redisUnusable.length} times${redisUnusable.length === 0 ? '' : `: ${redisUnusable.map(line => JSON.stringify(line.reason)).join(' | ')}`}`
  t.comment(unusable)
  // tap's terse reporter prints no comments: a failure carries what explains it.
  const figures = `${served}/${legitimate.length} served, p99 ${p99.toFixed(0)} ms; HubSpot ${stats.calls} calls, ${stats.rejected429} answered 429; ${unusable}`
  t.equal(served, LEGITIMATE, `every new person got a token (${figures})`)
  t.ok(mostTokens <= allowed, `no abuser got more than ${allowed} tokens (${mostTokens})`)
  t.equal(stats.rejected429, 0, `and HubSpot never answered 429 (${figures})`)
})
