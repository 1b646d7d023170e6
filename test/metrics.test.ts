import t from 'tap'
import { request } from 'undici'
import { type MetricsListener, startMetricsListener } from '../src/metrics/listener.js'
import { createServiceMetrics, type ServiceMetrics } from '../src/metrics/service-metrics.js'
import { baseEnv, bearer, build, signSession, startEmulator } from './helper.js'

type Teardown = { teardown: (fn: () => unknown) => void }

async function startListener (t: Teardown, metrics: ServiceMetrics): Promise<MetricsListener> {
  const listener = await startMetricsListener(metrics.registry, { port: 0, host: '127.0.0.1' })
  t.teardown(() => listener.close())
  return listener
}

async function scrape (listener: MetricsListener, path = '/metrics'): Promise<{ status: number; contentType: unknown; text: string }> {
  const answer = await request(listener.url + path)
  return { status: answer.statusCode, contentType: answer.headers['content-type'], text: await answer.body.text() }
}

/** The request series is recorded in onResponse, just after the answer left: poll until it shows. */
async function scrapeUntil (listener: MetricsListener, pattern: RegExp): Promise<string> {
  const deadline = Date.now() + 5000
  let text = (await scrape(listener)).text
  while (!pattern.test(text) && Date.now() < deadline) {
    await new Promise(resolve => setImmediate(resolve))
    text = (await scrape(listener)).text
  }
  return text
}

const session = (email = 'ada@example.com'): Record<string, string> => bearer(signSession({ sub: email, email }))

t.test('after a /chat-token call the metrics port shows request, HubSpot and process series', async t => {
  const emulator = await startEmulator(t)
  const metrics = createServiceMetrics()
  const service = await build(t, baseEnv(emulator), { metrics })
  const listener = await startListener(t, metrics)

  t.equal((await service.get('/chat-token', session())).status, 200)
  const text = await scrapeUntil(listener, /route="\/chat-token"/)
  t.match(text, /^chat_token_http_request_duration_seconds_count\{method="GET",route="\/chat-token",status="200"\} 1$/m)
  t.match(text, /^chat_token_http_request_duration_seconds_bucket\{le="0\.005",method="GET",route="\/chat-token",status="200"\} \d$/m)
  t.match(text, /^chat_token_hubspot_requests_total\{outcome="ok",status="200"\} 1$/m)
  t.match(text, /^chat_token_hubspot_request_duration_seconds_count\{outcome="ok"\} 1$/m)
  t.match(text, /^chat_token_token_cache_lookups_total\{result="hit"\} \d+$/m)
  t.match(text, /^chat_token_token_cache_lookups_total\{result="miss"\} \d+$/m)
  t.match(text, /^chat_token_hubspot_breaker_state\{state="closed"\} 1$/m)
  t.match(text, /^process_cpu_user_seconds_total \d/m, 'default process metrics')
  t.match(text, /^nodejs_eventloop_lag_seconds \d/m)
  t.notMatch(text, /chat_token_redis_up/, 'no Redis gauge without Redis')
  t.notMatch(text, /ada@example\.com|Bearer/, 'no personal data or credentials in labels')

  const answer = await scrape(listener)
  t.equal(answer.status, 200)
  t.match(answer.contentType, /^text\/plain; version=0\.0\.4/)
})

t.test('/metrics is never served on the public port', async t => {
  const metrics = createServiceMetrics({ processMetrics: false })
  const service = await build(t, baseEnv(undefined), { metrics })
  const answer = await service.get('/metrics')
  t.equal(answer.status, 404)
  t.match(answer.json(), { code: 'not_found' })
})

t.test('the request histogram is labelled by route pattern, not by raw URL', async t => {
  const metrics = createServiceMetrics({ processMetrics: false })
  const service = await build(t, baseEnv(undefined), { metrics })
  const listener = await startListener(t, metrics)
  await service.get('/wp-admin/setup.php?x=1')
  await service.get('/.env')
  await service.get('/chat-token')
  await service.get('/healthz?probe=1')
  const text = await scrapeUntil(listener, /route="\/healthz"/)
  t.match(text, /^chat_token_http_request_duration_seconds_count\{method="GET",route="unmatched",status="404"\} 2$/m)
  t.match(text, /^chat_token_http_request_duration_seconds_count\{method="GET",route="\/chat-token",status="401"\} 1$/m)
  t.match(text, /^chat_token_http_request_duration_seconds_count\{method="GET",route="\/healthz",status="200"\} 1$/m)
  t.notMatch(text, /wp-admin|\.env|probe/)
})

t.test('HubSpot failures are counted per attempt, by outcome and status', async t => {
  const emulator = await startEmulator(t)
  const metrics = createServiceMetrics({ processMetrics: false })
  const service = await build(t, baseEnv(emulator, { HUBSPOT_MAX_RETRIES: '1' }), { metrics })
  const listener = await startListener(t, metrics)
  emulator.setFaults({ sequence: [{ kind: 'status', status: 503 }, { kind: 'status', status: 503 }] })
  t.equal((await service.get('/chat-token', session())).status, 503)
  const unreachable = await build(t, baseEnv(undefined, { HUBSPOT_MAX_RETRIES: '0' }), { metrics })
  t.equal((await unreachable.get('/chat-token', session())).status, 503)
  const text = await scrapeUntil(listener, /status="503"\} 2/)
  t.match(text, /^chat_token_hubspot_requests_total\{outcome="server_error",status="503"\} 2$/m)
  t.match(text, /^chat_token_hubspot_requests_total\{outcome="connection_error",status="none"\} 1$/m)
  t.match(text, /^chat_token_hubspot_request_duration_seconds_count\{outcome="server_error"\} 2$/m)
})

t.test('token events light up the cache, budget, breaker and Redis series', async t => {
  const metrics = createServiceMetrics({ redisConfigured: true, processMetrics: false })
  const listener = await startListener(t, metrics)
  t.match((await scrape(listener)).text, /^chat_token_redis_up 0$/m, 'down until Redis reports')
  const events = metrics.events
  events.cacheHit()
  events.cacheHit()
  events.cacheMiss()
  events.budgetWaited(40)
  events.budgetRefused()
  events.sendHeldBack()
  events.breakerState('open')
  events.redisUp(true)
  const text = (await scrape(listener)).text
  t.match(text, /^chat_token_token_cache_lookups_total\{result="hit"\} 2$/m)
  t.match(text, /^chat_token_token_cache_lookups_total\{result="miss"\} 1$/m)
  t.match(text, /^chat_token_hubspot_budget_wait_seconds_bucket\{le="0\.05"\} 1$/m)
  t.match(text, /^chat_token_hubspot_budget_wait_seconds_bucket\{le="0\.01"\} 0$/m)
  t.match(text, /^chat_token_hubspot_budget_wait_seconds_sum 0\.04$/m)
  t.match(text, /^chat_token_hubspot_budget_refusals_total 1$/m)
  t.match(text, /^chat_token_hubspot_sends_held_back_total 1$/m)
  t.match(text, /^chat_token_hubspot_breaker_state\{state="open"\} 1$/m)
  t.match(text, /^chat_token_hubspot_breaker_state\{state="closed"\} 0$/m)
  t.match(text, /^chat_token_hubspot_breaker_state\{state="half-open"\} 0$/m)
  t.match(text, /^chat_token_redis_up 1$/m)
  events.redisUp(false)
  t.match((await scrape(listener)).text, /^chat_token_redis_up 0$/m)
})

t.test('each app instance keeps its own registry', async t => {
  const first = createServiceMetrics()
  const second = createServiceMetrics()
  first.events.cacheHit()
  t.match(await first.registry.metrics(), /result="hit"\} 1$/m)
  t.match(await second.registry.metrics(), /result="hit"\} 0$/m)
})

t.test('the metrics listener serves only GET and HEAD /metrics', async t => {
  const listener = await startListener(t, createServiceMetrics({ processMetrics: false }))
  const other = await scrape(listener, '/')
  t.equal(other.status, 404)
  t.equal(other.contentType, 'application/problem+json')
  const head = await request(`${listener.url}/metrics`, { method: 'HEAD' })
  t.equal(head.statusCode, 200)
  t.equal(await head.body.text(), '')
  const post = await request(`${listener.url}/metrics`, { method: 'POST' })
  await post.body.dump()
  t.equal(post.statusCode, 404)
})
