import { context, propagation, trace } from '@opentelemetry/api'
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import t from 'tap'
import { ServiceError } from '../../src/errors.js'
import { enableStageSpans, NO_ATTRIBUTES, STAGE_SPANS, withSpan } from '../../src/telemetry/spans.js'

/** withSpan in this process, against an in-memory exporter (the whole pipeline is in traces.test.ts). */

t.test('before tracing starts, withSpan only calls the function: same value, same errors, no span', async t => {
  t.equal(trace.getActiveSpan(), undefined)
  t.equal(withSpan(STAGE_SPANS.breakerDecision, NO_ATTRIBUTES, () => 42), 42)
  t.equal(await withSpan(STAGE_SPANS.cacheLookup, NO_ATTRIBUTES, async () => 'found'), 'found')
  const inside = withSpan(STAGE_SPANS.verifySession, NO_ATTRIBUTES, () => trace.getActiveSpan())
  t.equal(inside, undefined, 'no span was made')
  t.throws(() => withSpan(STAGE_SPANS.breakerDecision, NO_ATTRIBUTES, () => { throw new ServiceError('upstream_unavailable', 'open') }), { code: 'upstream_unavailable' })
})

t.test('once started: one span per call, active while it runs, ended with its outcome', async t => {
  const exporter = new InMemorySpanExporter()
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  provider.register()
  enableStageSpans()
  t.teardown(() => { trace.disable(); context.disable(); propagation.disable() })

  const value = await withSpan(STAGE_SPANS.cacheLookup, { 'chat_token.example': 1 }, async () => {
    await new Promise(resolve => setImmediate(resolve))
    // A span made inside (as an instrumentation would) is its child.
    trace.getTracer('inner').startSpan('inner').end()
    return 'token'
  }, found => ({ 'chat_token.cache.hit': found !== undefined }))
  t.equal(value, 'token')
  t.equal(withSpan(STAGE_SPANS.breakerDecision, NO_ATTRIBUTES, () => true, probe => ({ 'chat_token.breaker.probe': probe })), true)
  await t.rejects(withSpan(STAGE_SPANS.budgetWait, NO_ATTRIBUTES, async () => { throw new ServiceError('upstream_unavailable', 'no slot for ada@example.com') }), { code: 'upstream_unavailable' })
  t.throws(() => withSpan(STAGE_SPANS.verifySession, NO_ATTRIBUTES, () => { throw new TypeError('bad input ada@example.com') }))

  const spans = exporter.getFinishedSpans()
  const named = (name: string) => spans.find(span => span.name === name)!
  const lookup = named('token cache lookup')
  t.same(lookup.attributes, { 'chat_token.example': 1, 'chat_token.cache.hit': true })
  t.equal(named('inner').parentSpanContext?.spanId, lookup.spanContext().spanId, 'nested under the active stage span')
  t.same(named('breaker decision').attributes, { 'chat_token.breaker.probe': true })
  const budget = named('budget wait')
  t.same(budget.status, { code: 2, message: 'upstream_unavailable' }, 'failures carry the error code, never the message')
  t.same(budget.attributes, { 'error.type': 'upstream_unavailable' })
  t.same(named('verify session').status, { code: 2, message: 'TypeError' })
  t.notOk(JSON.stringify(spans.map(span => [span.attributes, span.status, span.events])).includes('ada@example.com'))
})
