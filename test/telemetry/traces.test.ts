import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { request } from 'undici'
import { ACCESS_TOKEN, JWT_SECRET, bearer, signSession, startEmulator } from '../helper.js'
import { startRedisServer } from '../redis-helper.js'
import { startOtlpReceiver, type ReceivedSpan } from './otlp-receiver.js'
import { startServiceProcess } from './service-process.js'
import { childrenOf, descendantsOf, outline, spansOfTrace } from './span-tree.js'

/**
 * Tracing end to end: the real service in its own process exports to a real OTLP/HTTP receiver, with
 * the HubSpot emulator, a user directory and a Redis server of its own. Each request's spans are read
 * back as a tree.
 */

// Starting the service as a process on a busy 2-core machine takes several seconds.
t.setTimeout(180_000)

const SPAN_KIND_SERVER = 2
const SPAN_KIND_CLIENT = 3
const STATUS_ERROR = 2
const SHOWN = ['chat_token.cache.hit', 'chat_token.flight.joined', 'chat_token.breaker.probe', 'chat_token.budget.renewal', 'chat_token.session.source', 'error.type', 'http.response.status_code', 'db.query.text', 'url.full']

function traceparent (): { header: string; traceId: string; parentId: string } {
  const traceId = randomBytes(16).toString('hex')
  const parentId = randomBytes(8).toString('hex')
  return { header: `00-${traceId}-${parentId}-01`, traceId, parentId }
}

async function get (url: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  const response = await request(url, { headers })
  return { status: response.statusCode, text: await response.body.text() }
}

/** A user directory that answers any subject with one email, and keeps the headers it was sent. */
async function startDirectory (t: { teardown: (fn: () => unknown) => void }, email: string): Promise<{ template: string; received: () => Array<Record<string, string | string[] | undefined>> }> {
  const received: Array<Record<string, string | string[] | undefined>> = []
  const server = createServer((req, res) => {
    received.push(req.headers)
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ email }))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => { server.closeAllConnections(); server.close(resolve) }))
  return { template: `http://127.0.0.1:${(server.address() as AddressInfo).port}/users/{sub}?fields=email`, received: () => [...received] }
}

function only (spans: ReceivedSpan[], name: string): ReceivedSpan {
  const found = spans.filter(span => span.name === name)
  if (found.length !== 1) throw new Error(`expected one "${name}" span, found ${found.length}`)
  return found[0]!
}

t.test('a miss, a hit, a failing HubSpot and a directory lookup: one trace each, stages under the request span, nothing secret exported', async t => {
  const emulator = await startEmulator(t)
  const receiver = await startOtlpReceiver(t)
  const redis = await startRedisServer(t)
  const directory = await startDirectory(t, 'grace@example.com')
  const lookupAuth = 'Bearer directory-credential-value'
  const service = await startServiceProcess(t, {
    HUBSPOT_BASE_URL: emulator.url,
    REDIS_URL: redis.url,
    USER_LOOKUP_URL: directory.template,
    USER_LOOKUP_AUTH: lookupAuth,
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_SERVICE_NAME: 'chat-token-under-test',
    OTEL_BSP_SCHEDULE_DELAY: '100'
  })
  t.match(service.logLines().find(line => line.msg === 'tracing on'), { tracesUrl: `${receiver.url}/v1/traces` }, 'start-up says where traces go')

  const adaJwt = signSession({ sub: 'user-ada', email: 'ada@example.com' })
  const bobJwt = signSession({ sub: 'user-bob', email: 'bob@example.com' })
  const subjectOnlyJwt = signSession({ sub: 'directory-subject-7' })
  const missParent = traceparent()
  const hitParent = traceparent()
  const failureParent = traceparent()
  const directoryParent = traceparent()

  const miss = await get(`${service.url}/chat-token`, { ...bearer(adaJwt), traceparent: missParent.header })
  t.equal(miss.status, 200, miss.text)
  const hit = await get(`${service.url}/chat-token`, { ...bearer(adaJwt), traceparent: hitParent.header })
  t.equal(hit.status, 200, hit.text)
  emulator.setFaults({ sequence: [1, 2, 3].map(() => ({ kind: 'status' as const, status: 500 })) })
  const failure = await get(`${service.url}/chat-token`, { ...bearer(bobJwt), traceparent: failureParent.header })
  t.equal(failure.status, 503, failure.text)
  emulator.setFaults({})
  const looked = await get(`${service.url}/chat-token`, { ...bearer(subjectOnlyJwt), traceparent: directoryParent.header })
  t.equal(looked.status, 200, looked.text)
  const untraced = await get(`${service.url}/healthz`, {})
  t.equal(untraced.status, 200)

  // SIGTERM: the service closes and exports what it still holds before exiting.
  t.equal(await service.stop(), 0, 'the service exits 0')
  const spans = receiver.spans()
  t.ok(spans.length > 0, `${spans.length} spans received`)
  const requestSpanOf = (traceId: string): ReceivedSpan => {
    const roots = spansOfTrace(spans, traceId).filter(span => span.scope === '@fastify/otel')
    if (roots.length !== 1) throw new Error(`expected one request span in trace ${traceId}, found ${roots.length}`)
    return roots[0]!
  }

  t.test('the miss', async t => {
    const root = requestSpanOf(missParent.traceId)
    t.comment(outline(spans, root, SHOWN))
    t.equal(root.name, 'GET /chat-token')
    t.equal(root.kind, SPAN_KIND_SERVER)
    t.equal(root.parentSpanId, missParent.parentId, 'the request span continues the incoming traceparent')
    t.match(root.attributes, { 'http.response.status_code': 200, 'http.route': '/chat-token', 'url.path': '/chat-token' })
    t.match(root.resource, { 'service.name': 'chat-token-under-test', 'service.version': /^\d+\.\d+\.\d+/ })
    const children = childrenOf(spans, root)
    t.match(only(children, 'verify session').attributes, { 'chat_token.session.source': 'header' })
    const lookup = only(children, 'token cache lookup')
    t.match(lookup.attributes, { 'chat_token.cache.hit': false })
    t.ok(childrenOf(spans, lookup).some(span => span.scope === '@opentelemetry/instrumentation-ioredis'), 'the Redis read is under the cache lookup')
    t.match(only(children, 'single-flight wait').attributes, { 'chat_token.flight.joined': false })
    t.match(only(children, 'breaker decision').attributes, { 'chat_token.breaker.probe': false })
    // A send the socket held back for leaving late (a cold connection) shows as an unsent POST and a
    // second budget wait, flagged as a renewal; the last POST is the one HubSpot answered.
    const waits = children.filter(span => span.name === 'budget wait')
    t.ok(waits.length >= 1, 'a budget wait before the call')
    t.same(waits.map(span => span.attributes['chat_token.budget.renewal']), waits.map((_, index) => index > 0), 'only later waits are renewals')
    const attempts = children.filter(span => span.name === 'POST')
    t.equal(attempts.length, waits.length, 'a POST span for each slot')
    const attempt = attempts.at(-1)!
    t.equal(attempt.kind, SPAN_KIND_CLIENT)
    t.match(attempt.attributes, { 'http.response.status_code': 200, 'url.full': `${emulator.url}/conversations/v3/visitor-identification/tokens/create` })
    const redisSpans = descendantsOf(spans, root).filter(span => span.scope === '@opentelemetry/instrumentation-ioredis')
    t.ok(redisSpans.length > 0, 'Redis commands are spans of the request')
    for (const span of redisSpans) t.equal(span.attributes['db.query.text'], span.name, `Redis ${span.name}: the command name only, no arguments`)
  })

  t.test('the hit', async t => {
    const root = requestSpanOf(hitParent.traceId)
    t.comment(outline(spans, root, SHOWN))
    t.equal(root.parentSpanId, hitParent.parentId)
    const children = childrenOf(spans, root)
    only(children, 'verify session')
    t.match(only(children, 'token cache lookup').attributes, { 'chat_token.cache.hit': true })
    const names = descendantsOf(spans, root).map(span => span.name)
    for (const absent of ['single-flight wait', 'breaker decision', 'budget wait', 'POST']) t.notOk(names.includes(absent), `no ${absent} on a hit`)
  })

  t.test('the failing HubSpot call', async t => {
    const root = requestSpanOf(failureParent.traceId)
    t.comment(outline(spans, root, SHOWN))
    t.equal(root.parentSpanId, failureParent.parentId)
    t.match(root.attributes, { 'http.response.status_code': 503 })
    const children = childrenOf(spans, root)
    const answered = children.filter(span => span.name === 'POST' && span.attributes['http.response.status_code'] !== undefined)
    t.equal(answered.length, 3, 'one client span per attempt: the first and two retries')
    for (const attempt of answered) t.match(attempt.attributes, { 'http.response.status_code': 500 })
    t.equal(children.filter(span => span.name === 'breaker decision').length, 3, 'a breaker decision before each attempt')
    t.equal(children.filter(span => span.name === 'budget wait' && span.attributes['chat_token.budget.renewal'] === false).length, 3, 'a budget slot for each attempt')
    const wait = only(children, 'single-flight wait')
    t.equal(wait.status.code, STATUS_ERROR)
    t.equal(wait.attributes['error.type'], 'upstream_unavailable')
  })

  t.test('the directory lookup', async t => {
    const root = requestSpanOf(directoryParent.traceId)
    t.comment(outline(spans, root, SHOWN))
    const lookup = childrenOf(spans, root).find(span => span.name === 'GET' && span.kind === SPAN_KIND_CLIENT)
    t.ok(lookup, 'the directory call is a client span of the request')
    t.equal(lookup?.attributes['url.full'], directory.template, 'recorded as the template: the subject is not in it')
    const sent = directory.received()
    t.equal(sent.length, 1)
    t.equal(sent[0]?.traceparent, `00-${directoryParent.traceId}-${lookup?.spanId}-01`, 'the directory gets the trace, parented on its call span')
    t.equal(sent[0]?.baggage, undefined)
  })

  t.test('health checks are not traced', async t => {
    t.notOk(spans.some(span => String(span.attributes['url.path']).startsWith('/healthz')))
  })

  t.test('nothing exported holds an email, a session JWT, a token, the access token or the subject', async t => {
    const exported = receiver.rawBodies().join('\n')
    const minted = [miss, hit, looked].map(answer => String((JSON.parse(answer.text) as { token: string }).token))
    const secrets = {
      'an email': ['ada@example.com', 'bob@example.com', 'grace@example.com', '@example.com'],
      'a session JWT': [adaJwt, bobJwt, subjectOnlyJwt, adaJwt.split('.')[2]!],
      'the JWT secret': [JWT_SECRET],
      'the HubSpot access token': [ACCESS_TOKEN],
      'an identification token': minted,
      'the directory credential': [lookupAuth, 'directory-credential-value'],
      'the directory subject': ['directory-subject-7'],
      'a Bearer header': ['Bearer ']
    }
    for (const [what, values] of Object.entries(secrets)) {
      for (const value of values) t.notOk(exported.includes(value), `no ${what} in what was exported`)
    }
  })
})
