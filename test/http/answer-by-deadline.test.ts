import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { baseEnv, bearer, captureLogs, signSession, startEmulator, startService } from '../helper.js'

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

t.test('requests that finish in time are answered by the route as usual, GET and DELETE alike', async t => {
  const emulator = await startEmulator(t)
  const service = await startService(t, baseEnv(emulator, { HUBSPOT_TIMEOUT_MS: String(TIMEOUT_MS) }))
  const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => service.get('/chat-token', bearer(signSession({ sub: `u${i}`, email: `u${i}@example.com` })))))
  t.same(answers.map(answer => answer.status), answers.map(() => 200))
  const logout = await service.send('DELETE', '/chat-token', bearer(signSession({ sub: 'u1', email: 'u1@example.com' })))
  t.equal(logout.status, 204)
})
