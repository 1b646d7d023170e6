import t from 'tap'
import { createOutboundUrlRecorder } from '../../src/telemetry/outbound-url.js'
import { otelVariables, printableUrl, tracingSettings } from '../../src/telemetry/settings.js'

t.test('tracing is on only with an OTLP endpoint, and OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none turn it off', async t => {
  t.same(tracingSettings({}), { enabled: false, reason: 'no-endpoint' })
  t.same(tracingSettings({ OTEL_SERVICE_NAME: 'x', OTEL_TRACES_SAMPLER: 'always_on', OTEL_EXPORTER_OTLP_ENDPOINT: ' ' }), { enabled: false, reason: 'no-endpoint' })
  t.same(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), { enabled: true, tracesUrl: 'http://collector:4318/v1/traces' })
  t.same(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/otlp/' }), { enabled: true, tracesUrl: 'http://collector:4318/otlp/v1/traces' })
  // The signal-specific endpoint is used as it is, and wins over the general one.
  t.same(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:4318/traces' }), { enabled: true, tracesUrl: 'http://b:4318/traces' })
  t.same(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_SDK_DISABLED: 'TRUE' }), { enabled: false, reason: 'sdk-disabled' })
  t.same(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_SDK_DISABLED: 'false' }), { enabled: true, tracesUrl: 'http://a:4318/v1/traces' })
  t.same(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_TRACES_EXPORTER: 'none' }), { enabled: false, reason: 'exporter-none' })
})

t.test('the traces URL is printed without credentials or query', async t => {
  t.equal(printableUrl('https://user:secret@collector.example:4318/v1/traces?key=secret'), 'https://collector.example:4318/v1/traces')
  t.equal(printableUrl('not a url'), '(not a URL)')
})

t.test('OTEL_* variables are picked out of the environment (./.env ones are copied for the SDK)', async t => {
  t.same(otelVariables({ OTEL_SERVICE_NAME: 'a', PORT: '1', HOTEL_X: 'no', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c' }), { OTEL_SERVICE_NAME: 'a', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c' })
})

t.test('outbound URLs: the user directory as its template, anything else without its query', async t => {
  const record = createOutboundUrlRecorder('https://reader:pw@directory.internal/v1/users/{sub}?fields=email')
  t.same(record('https://directory.internal', '/v1/users/ada%40example.com?fields=email'), {
    'url.full': 'https://directory.internal/v1/users/{sub}?fields=email',
    'url.path': '/v1/users/{sub}',
    'url.query': '?fields=email'
  })
  const inQuery = createOutboundUrlRecorder('https://directory.internal/lookup?subject={sub}')
  t.same(inQuery('https://directory.internal:443', '/lookup?subject=ada%40example.com'), {
    'url.full': 'https://directory.internal/lookup?subject={sub}',
    'url.path': '/lookup',
    'url.query': '?subject={sub}'
  })
  t.same(record('https://api.hubapi.com', '/conversations/v3/visitor-identification/tokens/create'), {
    'url.full': 'https://api.hubapi.com/conversations/v3/visitor-identification/tokens/create',
    'url.path': '/conversations/v3/visitor-identification/tokens/create',
    'url.query': ''
  })
  t.same(record('https://keys.example.com', '/jwks.json?key=abc'), { 'url.full': 'https://keys.example.com/jwks.json', 'url.path': '/jwks.json', 'url.query': '' })
  // Another path on the directory's host is not the directory.
  t.equal(record('https://directory.internal', '/health')['url.full'], 'https://directory.internal/health')
  t.equal(createOutboundUrlRecorder(undefined)('https://a.example', '/x?y=1')['url.full'], 'https://a.example/x')
})
