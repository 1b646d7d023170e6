import { connect } from 'node:net'
import t from 'tap'
import { request } from 'undici'
import { baseEnv, bearer, build, type BuiltService, rawExchange, signSession, startEmulator, startService } from '../helper.js'

/**
 * The edge of the service: security headers, CORS, load shedding, size limits and socket timeouts. What
 * is about headers goes through app.inject(); limits, timeouts and connection handling use a real socket.
 */

const APP_ORIGIN = 'https://app.example.com'

/** A CORS preflight (the shared helper sends only the service's own methods). */
async function preflight (service: BuiltService, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
  const answer = await service.app.inject({ method: 'OPTIONS', url: '/chat-token', headers })
  return { status: answer.statusCode, headers: answer.headers as Record<string, string | string[] | undefined> }
}

function bodyOf (rawAnswer: string): Record<string, unknown> {
  return JSON.parse(rawAnswer.slice(rawAnswer.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>
}

t.test('security headers suit a JSON API, on success and problem answers alike', async t => {
  const service = await build(t, baseEnv(undefined))
  for (const answer of [await service.get('/healthz'), await service.get('/no-such-route')]) {
    t.equal(answer.headers['content-security-policy'], 'default-src \'none\';base-uri \'none\';form-action \'none\';frame-ancestors \'none\'')
    t.equal(answer.headers['x-content-type-options'], 'nosniff')
    t.equal(answer.headers['x-frame-options'], 'DENY')
    t.equal(answer.headers['referrer-policy'], 'no-referrer')
    t.equal(answer.headers['cross-origin-resource-policy'], 'same-origin')
    t.match(answer.headers['strict-transport-security'], /^max-age=\d+; includeSubDomains$/)
    t.notOk(answer.headers['x-powered-by'])
    t.notOk(answer.headers['origin-agent-cluster'], 'document-only headers are left out')
  }
})

t.test('CORS: exact listed origins only, with credentials, and a cached preflight', async t => {
  const emulator = await startEmulator(t)
  const service = await build(t, baseEnv(emulator, { CORS_ORIGINS: `${APP_ORIGIN},https://other.example.com` }))

  const allowed = await preflight(service, {
    origin: APP_ORIGIN, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization'
  })
  t.equal(allowed.status, 204)
  t.equal(allowed.headers['access-control-allow-origin'], APP_ORIGIN)
  t.equal(allowed.headers['access-control-allow-credentials'], 'true')
  t.equal(allowed.headers['access-control-allow-methods'], 'GET, DELETE')
  t.equal(allowed.headers['access-control-allow-headers'], 'authorization, x-request-id')
  t.equal(allowed.headers['access-control-max-age'], '7200')
  t.match(allowed.headers.vary, /Origin/)

  const answer = await service.get('/chat-token', { origin: APP_ORIGIN, ...bearer(signSession({ sub: 'u1', email: 'ada@example.com' })) })
  t.equal(answer.status, 200)
  t.equal(answer.headers['access-control-allow-origin'], APP_ORIGIN)
  t.equal(answer.headers['access-control-expose-headers'], 'date, retry-after, x-request-id')

  const refusal = await service.get('/chat-token', { origin: APP_ORIGIN })
  t.equal(refusal.status, 401)
  t.equal(refusal.headers['access-control-allow-origin'], APP_ORIGIN, 'the page can read the problem it got')

  for (const origin of ['https://evil.example.com', 'https://app.example.com.evil.test', 'http://app.example.com', 'null']) {
    const foreign = await preflight(service, { origin, 'access-control-request-method': 'GET' })
    t.equal(foreign.status, 404, `${origin}: preflight refused`)
    t.equal(foreign.headers['content-type'], 'application/problem+json; charset=utf-8')
    t.notOk(foreign.headers['access-control-allow-origin'])
    t.notOk(foreign.headers['access-control-allow-credentials'])
    const direct = await service.get('/healthz', { origin })
    t.notOk(direct.headers['access-control-allow-origin'], `${origin}: no CORS headers on answers either`)
  }
})

t.test('CORS: without CORS_ORIGINS only the same origin works; "*" is never answered', async t => {
  const service = await build(t, baseEnv(undefined))
  const refused = await preflight(service, { origin: APP_ORIGIN, 'access-control-request-method': 'GET' })
  t.equal(refused.status, 404)
  t.notOk(refused.headers['access-control-allow-origin'])
  const answer = await service.get('/healthz', { origin: APP_ORIGIN })
  t.notOk(answer.headers['access-control-allow-origin'])
})

t.test('load shedding: past the heap threshold, work is refused with 503 overloaded but health answers', async t => {
  const emulator = await startEmulator(t)
  // One byte: the first sample (once a second) puts the service under pressure.
  const service = await build(t, baseEnv(emulator, { MAX_HEAP_USED_BYTES: '1' }))
  const session = bearer(signSession({ sub: 'u1', email: 'ada@example.com' }))
  const deadline = Date.now() + 10_000
  let answer = await service.get('/chat-token', session)
  while (answer.status !== 503 && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 50))
    answer = await service.get('/chat-token', session)
  }
  t.equal(answer.status, 503)
  t.equal(answer.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.equal(answer.headers['retry-after'], '5')
  t.match(answer.json(), { code: 'overloaded', status: 503, requestId: String })
  t.equal((await service.get('/healthz')).status, 200, 'liveness is not shed')
  t.equal((await service.get('/readyz')).status, 200, 'readiness is not shed')
  const callsSoFar = emulator.calls().length
  t.equal((await service.get('/chat-token', session)).status, 503)
  t.equal(emulator.calls().length, callsSoFar, 'shed requests never reach HubSpot')
})

t.test('load shedding is off when every threshold is 0', async t => {
  const emulator = await startEmulator(t)
  const service = await build(t, baseEnv(emulator, { MAX_HEAP_USED_BYTES: '0', MAX_EVENT_LOOP_DELAY_MS: '0' }))
  t.notOk(service.app.hasDecorator('isUnderPressure') && service.app.isUnderPressure(), 'never under pressure')
  t.equal((await service.get('/chat-token', bearer(signSession({ sub: 'u1', email: 'ada@example.com' })))).status, 200)
})

t.test('size limits: oversized bodies and headers are refused as problem+json', async t => {
  const service = await startService(t, baseEnv(undefined))
  const body = await service.send('DELETE', '/chat-token', { 'content-type': 'application/json' }, JSON.stringify({ pad: 'x'.repeat(20_000) }))
  t.equal(body.status, 413)
  t.match(body.json(), { code: 'payload_too_large' })

  const raw = await rawExchange(service.url, `GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`)
  t.match(raw, /^HTTP\/1\.1 431 /)
  t.match(raw, /content-type: application\/problem\+json/)
  t.match(bodyOf(raw), { code: 'headers_too_large', status: 431, requestId: String })
})

t.test('timeouts: a client that trickles its headers is cut off with 408', async t => {
  const service = await startService(t, baseEnv(undefined, { HEADERS_TIMEOUT_MS: '1000', REQUEST_TIMEOUT_MS: '2000' }))
  const started = Date.now()
  const raw = await rawExchange(service.url, 'GET /healthz HTTP/1.1\r\nhost: x\r\n')
  const elapsed = Date.now() - started
  t.match(raw, /^HTTP\/1\.1 408 /)
  t.match(bodyOf(raw), { code: 'request_timeout', status: 408 })
  t.ok(elapsed >= 1000 && elapsed < 4000, `cut off after ${elapsed} ms (timeout 1000 ms, checked every second)`)
})

t.test('timeouts: listener settings follow the configuration; idle keep-alive is not a header timeout', async t => {
  const defaults = await startService(t, baseEnv(undefined))
  t.equal(defaults.app.server.keepAliveTimeout, 72_000, 'longer than a 60 s load balancer idle timeout')
  t.equal(defaults.app.server.headersTimeout, 10_000)
  t.equal(defaults.app.server.requestTimeout, 15_000)

  const service = await startService(t, baseEnv(undefined, { HEADERS_TIMEOUT_MS: '1000', REQUEST_TIMEOUT_MS: '1000', KEEP_ALIVE_TIMEOUT_MS: '10000' }))
  t.equal(service.app.server.keepAliveTimeout, 10_000)
  // One keep-alive socket, idle for longer than the header timeout, then reused: still served.
  const { hostname, port } = new URL(service.url)
  const socket = connect(Number(port), hostname)
  t.teardown(() => { socket.destroy() })
  const answers: string[] = []
  socket.on('data', chunk => answers.push(chunk.toString()))
  const answered = async (count: number): Promise<void> => {
    while (answers.join('').split('HTTP/1.1 200').length - 1 < count) await new Promise(resolve => socket.once('data', resolve))
  }
  socket.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n')
  await answered(1)
  // The idle time is what is under test here, not a synchronisation.
  await new Promise(resolve => setTimeout(resolve, 2500))
  socket.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n')
  await answered(2)
  t.notOk(socket.destroyed, 'the idle connection was kept')
})

t.test('draining: readiness is 503 and every answer closes its connection', async t => {
  const lifecycle = { draining: false }
  const service = await startService(t, baseEnv(undefined), { lifecycle })
  t.notOk((await service.get('/healthz')).headers.connection === 'close')
  lifecycle.draining = true
  const ready = await service.get('/readyz')
  t.equal(ready.status, 503)
  t.equal(ready.headers.connection, 'close')
  t.equal((await service.get('/healthz')).headers.connection, 'close')
})

t.test('app.close() alone marks the replica unready', async t => {
  const lifecycle = { draining: false }
  const service = await startService(t, baseEnv(undefined), { lifecycle })
  await service.app.close()
  t.ok(lifecycle.draining)
  await t.rejects(request(`${service.url}/readyz`), 'and no longer listens')
})
