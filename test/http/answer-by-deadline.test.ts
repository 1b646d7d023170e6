import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { type AnswerByDeadline, createAnswerByDeadline } from '../../src/http/answer-by-deadline.js'
import { registerProblemHandlers } from '../../src/http/problem.js'
import { baseEnv, bearer, captureLogs, manualClock, signSession, startEmulator, startService, until } from '../helper.js'

/**
 * Every /chat-token answer leaves within HUBSPOT_TIMEOUT_MS (+ 100 ms) of the request being read,
 * whatever a stage before HubSpot does. Lateness is read from the service's own access line (`ms`,
 * from reading the request to the answer's last byte), so the test process's own scheduling does not
 * count against the service.
 */

const TIMEOUT_MS = 600
const ALLOWED_OVERRUN_MS = 100

/** A server that accepts requests and never answers them. */
async function silentServer (t: Test): Promise<{ url: string; asked: () => number }> {
  let asked = 0
  const server: Server = createServer(() => { asked++ })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, asked: () => asked }
}

function accessLines (logs: ReturnType<typeof captureLogs>): Array<Record<string, unknown>> {
  return logs.lines().filter(line => line.msg === 'request' && line.path === '/chat-token')
}

t.test('a user directory that never answers: 504 upstream_timeout by the request\'s deadline, not the directory\'s', async t => {
  const emulator = await startEmulator(t)
  const directory = await silentServer(t)
  const logs = captureLogs()
  const service = await startService(t, baseEnv(emulator, {
    LOG_LEVEL: 'info',
    HUBSPOT_TIMEOUT_MS: String(TIMEOUT_MS),
    USER_LOOKUP_URL: `${directory.url}/users/{sub}`,
    USER_LOOKUP_TIMEOUT_MS: '5000'
  }), { logStream: logs.stream })
  const answer = await service.get('/chat-token', bearer(signSession({ sub: 'no-email' })))
  t.equal(answer.status, 504)
  t.equal(answer.json().code, 'upstream_timeout')
  t.equal(directory.asked(), 1)
  const [line] = accessLines(logs)
  t.ok(Number(line?.ms) <= TIMEOUT_MS + ALLOWED_OVERRUN_MS, `answered ${String(line?.ms)} ms after it was read (≤ ${TIMEOUT_MS} + ${ALLOWED_OVERRUN_MS})`)
  t.ok(Number(line?.ms) >= TIMEOUT_MS - 50, 'not before the deadline')
})

t.test('a JWKS refetch that never answers: 504 upstream_timeout at the deadline, answered by the backstop', async t => {
  const emulator = await startEmulator(t)
  const jwks = await silentServer(t)
  const logs = captureLogs()
  const service = await startService(t, baseEnv(emulator, {
    LOG_LEVEL: 'info',
    HUBSPOT_TIMEOUT_MS: String(TIMEOUT_MS),
    JWT_SECRET: undefined,
    JWT_JWKS_URL: `${jwks.url}/jwks.json`,
    JWT_AUDIENCE: 'web'
  }), { logStream: logs.stream })
  const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid: 'unknown' })).toString('base64url')
  const payload = Buffer.from(JSON.stringify({ sub: 'a', email: 'a@example.com', aud: 'web', exp: Math.floor(Date.now() / 1000) + 600 })).toString('base64url')
  const answer = await service.get('/chat-token', bearer(`${header}.${payload}.c2ln`))
  t.equal(answer.status, 504)
  t.equal(answer.json().code, 'upstream_timeout')
  t.match(answer.headers['content-type'], /^application\/problem\+json/)
  t.equal(jwks.asked(), 1, 'the JWKS was asked (and never answered)')
  const [line] = accessLines(logs)
  t.ok(Number(line?.ms) <= TIMEOUT_MS + ALLOWED_OVERRUN_MS, `answered ${String(line?.ms)} ms after it was read (≤ ${TIMEOUT_MS} + ${ALLOWED_OVERRUN_MS})`)
  t.ok(logs.lines().some(entry => entry.msg === 'answered at the deadline while a stage was still working'), 'the backstop says it answered')
})

/** A bare app with the backstop (1 s budget, a clock the test moves) and the hooks for the routes it guards. */
function guardedApp (t: Test): { clock: ReturnType<typeof manualClock>; app: FastifyInstance; guard: AnswerByDeadline; hooks: Pick<AnswerByDeadline, 'onRequest' | 'onResponse' | 'onRequestAbort'> } {
  const clock = manualClock(Date.parse('2026-12-05T12:00:00Z'))
  const app = Fastify()
  const guard = createAnswerByDeadline(app, { budgetMs: 1000, clock, sweepEveryMs: 5 })
  registerProblemHandlers(app)
  t.teardown(async () => { guard.close(); await app.close() })
  return { clock, app, guard, hooks: { onRequest: guard.onRequest, onResponse: guard.onResponse, onRequestAbort: guard.onRequestAbort } }
}

t.test('the backstop on its own: a request held past its deadline gets 504 once the clock passes it, one in time is left alone, and nothing stays watched', async t => {
  const { clock, app, guard, hooks } = guardedApp(t)
  let release: () => void = () => {}
  const held = new Promise<void>(resolve => { release = resolve })
  app.get('/held', hooks, async (_request, reply) => { await held; return reply.sent ? reply : { late: true } })
  app.get('/quick', hooks, async () => ({ quick: true }))

  t.same((await app.inject('/quick')).json(), { quick: true })
  t.equal(guard.watching, 0, 'an answered request is no longer watched')
  const pending = app.inject('/held')
  await until('the held request is watched', () => guard.watching === 1)
  clock.advance(1000)
  // The sweeping timer is unref'd (it must never hold a process open) and inject holds no socket: poll.
  let answer: Awaited<typeof pending> | undefined
  void pending.then(done => { answer = done })
  await until('the backstop answers', () => answer !== undefined)
  if (answer === undefined) return
  t.equal(answer.statusCode, 504)
  t.equal(answer.json().code, 'upstream_timeout')
  t.equal(guard.watching, 0)
  release()
})

t.test('the backstop watches requests in the order they came, whichever of them answers first', async t => {
  const { clock, app, guard, hooks } = guardedApp(t)
  const releases = new Map<string, () => void>()
  app.get<{ Params: { name: string } }>('/held/:name', hooks, async (request, reply) => {
    await new Promise<void>(resolve => releases.set(request.params.name, resolve))
    return reply.sent ? reply : { answered: request.params.name }
  })
  const answers = new Map<string, { statusCode: number; json: () => { code?: string; answered?: string } }>()
  const hold = async (name: string): Promise<void> => {
    void app.inject(`/held/${name}`).then(answer => { answers.set(name, answer) })
    await until(`${name} is held`, () => releases.has(name))
  }
  await hold('first')
  clock.advance(100)
  await hold('middle')
  clock.advance(100)
  await hold('last')
  t.equal(guard.watching, 3)

  releases.get('middle')!()
  await until('the middle one answers', () => answers.has('middle'))
  t.same(answers.get('middle')!.json(), { answered: 'middle' })
  t.equal(guard.watching, 2, 'the middle one left the list')

  clock.advance(800)
  await until('the first one gets its 504', () => answers.has('first'))
  t.equal(answers.get('first')!.statusCode, 504)
  t.equal(guard.watching, 1, 'the last one, still in time, is watched')
  t.notOk(answers.has('last'))

  clock.advance(200)
  await until('the last one gets its 504', () => answers.has('last'))
  t.equal(answers.get('last')!.json().code, 'upstream_timeout')
  t.equal(guard.watching, 0)
  for (const release of releases.values()) release()
})
