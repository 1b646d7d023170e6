import t from 'tap'
import Fastify, { LogController } from 'fastify'
import type { FastifyBaseLogger } from 'fastify'
import { createLoggers } from '../src/logging.js'
import { RequestLogger, requestLoggerFactory } from '../src/request-logger.js'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config/load-config.js'
import { baseEnv, captureLogs } from './helper.js'

/**
 * The service's logger on a captured stream, counting the children made of it (children of children
 * inherit the counting `child`, and with it its parent: fine for counting, not for their bindings).
 */
function countingLogger (): { logger: FastifyBaseLogger; children: () => number; lines: () => Array<Record<string, unknown>> } {
  const logs = captureLogs()
  const logger = createLoggers('info', logs.stream).service
  let children = 0
  const child = logger.child.bind(logger)
  logger.child = (...args: Parameters<FastifyBaseLogger['child']>) => {
    children++
    return child(...args)
  }
  return { logger, children: () => children, lines: logs.lines }
}

t.test('a request that logs nothing makes no child logger; one that logs writes what a child would, request id and redaction included', async t => {
  const { logger, children, lines } = countingLogger()
  const app = Fastify({ loggerInstance: logger, logController: new LogController({ disableRequestLogging: true }), childLoggerFactory: requestLoggerFactory })
  t.teardown(() => app.close())
  app.get('/quiet', async () => ({ ok: true }))
  app.get('/talks', async request => {
    request.log.warn({ token: 'secret-identification-token', step: 'lookup' }, 'took the slow path')
    request.log.debug('not at info')
    return { ok: true }
  })

  // Fastify makes children of its own while it starts (one per plugin context): counted from here.
  await app.ready()
  const atStart = children()
  t.equal((await app.inject('/quiet')).statusCode, 200)
  t.equal(children() - atStart, 0, 'no child for a request that logs nothing')

  const answer = await app.inject({ url: '/talks', headers: { 'x-request-id': 'ignored-by-fastify-here' } })
  t.equal(answer.statusCode, 200)
  t.equal(children() - atStart, 1, 'one child, made when the request first logged')
  const written = lines().filter(line => line.msg === 'took the slow path')
  t.equal(written.length, 1)
  t.equal(written[0]?.level, 40)
  t.equal(written[0]?.step, 'lookup')
  t.equal(written[0]?.token, '[redacted]', 'the service logger\'s redaction applies')
  t.match(written[0]?.reqId, /^req-/, 'the line carries the request id')
  t.notOk(lines().some(line => line.msg === 'not at info'), 'the level applies')
})

t.test('levels: the parent\'s until set, a child\'s option, and set on the request alone', async t => {
  const logs = captureLogs()
  const logger = createLoggers('info', logs.stream).service
  const lines = logs.lines
  const quiet = new RequestLogger(logger, { reqId: 'a' }, {})
  t.equal(quiet.level, 'info')
  const chatty = new RequestLogger(logger, { reqId: 'b' }, { level: 'debug' })
  t.equal(chatty.level, 'debug')
  chatty.debug('written at debug')
  t.ok(lines().some(line => line.msg === 'written at debug' && line.reqId === 'b'))
  quiet.level = 'error'
  t.equal(quiet.level, 'error')
  t.equal(logger.level, 'info', 'the service logger keeps its level')
  quiet.warn('below error')
  t.notOk(lines().some(line => line.msg === 'below error'))
  const grandchild = new RequestLogger(logger, { reqId: 'c' }, {}).child({ stage: 'tokens' })
  grandchild.info('from a grandchild')
  t.ok(lines().some(line => line.msg === 'from a grandchild' && line.reqId === 'c' && line.stage === 'tokens'))
})

t.test('the service gives every request a RequestLogger, whose lines carry the request id', async t => {
  const logs = captureLogs()
  const app = await buildApp(loadConfig(baseEnv(undefined, { LOG_LEVEL: 'info' })), { logStream: logs.stream })
  t.teardown(() => app.close())
  app.get('/probe', async request => {
    request.log.warn('probe line')
    return { lazy: request.log instanceof RequestLogger }
  })
  const answer = await app.inject({ url: '/probe' })
  t.same(answer.json(), { lazy: true })
  const requestId = answer.headers['x-request-id']
  t.type(requestId, 'string')
  t.ok(logs.lines().some(line => line.msg === 'probe line' && line.reqId === requestId), 'the line carries the answer\'s request id')
})
