import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { bearer, signSession, startEmulator } from '../helper.js'
import { startOtlpReceiver } from './otlp-receiver.js'
import { startServiceProcess } from './service-process.js'

/**
 * Tracing is off unless an OTLP endpoint is set, and off means off: the SDK, the exporter and the
 * instrumentations are never loaded, and nothing reaches a receiver. Which modules the process loads
 * is read by an ESM resolve hook of the test's own (every `import`, static or dynamic, passes through
 * it), writing each resolved URL to a file.
 */

t.setTimeout(180_000)

/** `--import` arguments that record every module URL the process resolves into the returned file. */
function moduleRecorder (): { nodeArgs: string[]; resolved: () => string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'chat-token-modules-'))
  const log = join(dir, 'resolved.txt')
  writeFileSync(log, '')
  const hooks = join(dir, 'hooks.mjs')
  writeFileSync(hooks, [
    "import { appendFileSync } from 'node:fs'",
    'let log',
    'export function initialize (data) { log = data.log }',
    'export async function resolve (specifier, context, next) {',
    '  const resolved = await next(specifier, context)',
    "  appendFileSync(log, resolved.url + '\\n')",
    '  return resolved',
    '}'
  ].join('\n'))
  const register = join(dir, 'register.mjs')
  writeFileSync(register, [
    "import { register } from 'node:module'",
    `register(${JSON.stringify(pathToFileURL(hooks).href)}, { data: { log: ${JSON.stringify(log)} } })`
  ].join('\n'))
  return {
    nodeArgs: ['--import', pathToFileURL(register).href],
    resolved: () => readFileSync(log, 'utf8').split('\n').filter(line => line !== '')
  }
}

/** Anything of tracing beyond @opentelemetry/api (which prom-client loads anyway, and is a no-op alone). */
const tracingModule = /\/node_modules\/(@opentelemetry\/(?!api\/)|@fastify\/otel\/)|\/telemetry\/tracing-sdk\./

async function serveSome (t: Test, url: string): Promise<void> {
  const headers = bearer(signSession({ sub: 'user-ada', email: 'ada@example.com' }))
  for (let i = 0; i < 3; i++) {
    const answer = await request(`${url}/chat-token`, { headers: { ...headers, traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } })
    await answer.body.dump()
    t.equal(answer.statusCode, 200)
  }
}

const offCases: Array<[string, Record<string, string>]> = [
  ['no OTLP endpoint, though other OTEL_* variables are set', { OTEL_SERVICE_NAME: 'chat-token', OTEL_TRACES_SAMPLER: 'always_on' }],
  ['an endpoint with OTEL_SDK_DISABLED=true', { OTEL_SDK_DISABLED: 'true' }],
  ['an endpoint with OTEL_TRACES_EXPORTER=none', { OTEL_TRACES_EXPORTER: 'none' }]
]
for (const [name, env] of offCases) {
  t.test(`${name}: no tracing module is loaded and nothing is exported`, async t => {
    const emulator = await startEmulator(t)
    const receiver = await startOtlpReceiver(t)
    const recorder = moduleRecorder()
    const endpoint: Record<string, string> = name.startsWith('an endpoint') ? { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url } : {}
    const service = await startServiceProcess(t, { HUBSPOT_BASE_URL: emulator.url, ...endpoint, ...env }, recorder.nodeArgs)
    await serveSome(t, service.url)
    t.equal(await service.stop(), 0)
    const loaded = recorder.resolved()
    t.ok(loaded.some(url => url.includes('/node_modules/fastify/')), 'the recorder saw the service load (fastify)')
    t.same(loaded.filter(url => tracingModule.test(url)), [], 'no SDK, exporter or instrumentation module')
    t.notOk(service.logLines().some(line => line.msg === 'tracing on'))
    t.equal(receiver.requests(), 0, 'nothing reached the receiver')
  })
}

t.test('with an endpoint, the same recorder sees the SDK load (the check above can fail)', async t => {
  const emulator = await startEmulator(t)
  const receiver = await startOtlpReceiver(t)
  const recorder = moduleRecorder()
  const service = await startServiceProcess(t, { HUBSPOT_BASE_URL: emulator.url, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url }, recorder.nodeArgs)
  await serveSome(t, service.url)
  t.equal(await service.stop(), 0)
  const loaded = recorder.resolved().filter(url => tracingModule.test(url))
  t.ok(loaded.some(url => url.includes('/@opentelemetry/sdk-trace-node/')), 'the SDK was loaded')
  t.ok(loaded.some(url => url.includes('/telemetry/tracing-sdk.')), 'through tracing-sdk')
  t.ok(receiver.spans().length > 0, 'and spans were exported')
})
