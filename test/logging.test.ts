import { spawn } from 'node:child_process'
import { join } from 'node:path'
import t from 'tap'
import { ACCESS_TOKEN, JWT_SECRET, baseEnv, bearer, build, captureLogs, signSession, startEmulator, startJwksServer, until } from './helper.js'
import { PROJECT_ROOT, runToExit, TS_LOADER } from './process-helper.js'
import { createEmailHasher, createLoggers } from '../src/logging.js'

/**
 * Log audit: the whole flow, failures included, at LOG_LEVEL=trace; no secret and no plain email may
 * appear anywhere in the output.
 */
t.test('no access token, session JWT, cookie, identification token or plain email in the logs', async t => {
  const emulator = await startEmulator(t)
  const logs = captureLogs()
  const service = await build(t, baseEnv(emulator, { LOG_LEVEL: 'trace', JWT_COOKIE: 'sid', HUBSPOT_MAX_RETRIES: '1', HUBSPOT_TIMEOUT_MS: '800' }), { logStream: logs.stream })
  const email = 'secret.person@example.com'
  const sessionJwt = signSession({ sub: 'u1', email, given_name: 'Secret' })
  const tokens: string[] = []

  const ok = await service.get('/chat-token', bearer(sessionJwt))
  tokens.push(ok.json().token as string)
  const viaCookie = await service.get('/chat-token', { cookie: `sid=${sessionJwt}` })
  tokens.push(viaCookie.json().token as string)
  await service.get('/chat-token', bearer(sessionJwt + 'tampered'))
  await service.get('/chat-token', { cookie: `sid=${sessionJwt}`, origin: 'https://evil.example.com' })
  // The first identity is cached now: the failures below need identities of their own.
  const others = [1, 2, 3].map(n => signSession({ sub: `u${n}`, email: `secret.person+${n}@example.com` }))
  emulator.setFaults({ sequence: [{ kind: 'status', status: 500 }, { kind: 'reset' }] })
  await service.get('/chat-token', bearer(others[0]!))
  emulator.setFaults({ sequence: [{ kind: 'hang' }] })
  await service.get('/chat-token', bearer(others[1]!))
  emulator.configure({ accessTokens: ['other'] })
  await service.get('/chat-token', bearer(others[2]!))
  await service.send('DELETE', '/chat-token', bearer(sessionJwt))
  await service.app.close()

  const output = logs.text()
  t.ok(output.length > 0, 'something was logged')
  t.ok(tokens.every(token => token.length > 10))
  const secrets: Record<string, string> = {
    'HubSpot access token': ACCESS_TOKEN,
    'JWT secret': JWT_SECRET,
    'session JWT': sessionJwt,
    'session JWT signature': sessionJwt.split('.')[2]!,
    'plain email': email,
    'other plain emails': 'secret.person+',
    'first identification token': tokens[0]!,
    'second identification token': tokens[1]!
  }
  for (const [name, secret] of Object.entries(secrets)) t.notOk(output.includes(secret), `no ${name} in the logs`)

  const requestLines = logs.lines().filter(line => line.msg === 'request')
  t.equal(requestLines.length, 8, 'exactly one line per request')
  const hash = createEmailHasher(ACCESS_TOKEN)(email)
  t.ok(requestLines.some(line => line.user === hash), 'the email appears only as its keyed hash')
  t.ok(requestLines.every(line => typeof line.reqId === 'string' && typeof line.status === 'number' && typeof line.ms === 'number'))
  t.same(requestLines.map(line => line.code ?? null), [null, null, 'invalid_token', 'origin_not_allowed', 'upstream_unavailable', 'upstream_timeout', 'upstream_rejected', null])
  t.ok(logs.lines().some(line => (line.hubspot as { correlationId?: string } | undefined)?.correlationId !== undefined), 'HubSpot correlationId is logged')
})

t.test('a JWKS key without JWT_AUDIENCE logs one warning at start-up naming the setting', async t => {
  const jwks = await startJwksServer(t, [])
  const logs = captureLogs()
  const env = baseEnv(undefined, { JWT_SECRET: undefined, JWT_JWKS_URL: jwks.url, LOG_LEVEL: 'info' })
  await build(t, env, { logStream: logs.stream })
  // Other start-up warnings (an unbuilt browser helper, say) may be there too: count the settings ones.
  const warnings = logs.lines().filter(line => line.level === 40 && line.setting !== undefined)
  t.equal(warnings.length, 1)
  t.equal(warnings[0]?.setting, 'JWT_AUDIENCE')
  t.match(warnings[0]?.msg, /any other application are accepted/)

  const quiet = captureLogs()
  await build(t, { ...env, JWT_AUDIENCE: 'web' }, { logStream: quiet.stream })
  t.equal(quiet.lines().filter(line => line.level === 40 && line.setting !== undefined).length, 0, 'no warning once the audience is pinned')
})

t.test('a logged err is its type, message and code: no "Object" type and no empty stack', async t => {
  const logs = captureLogs()
  // Nothing listens on port 9: the HubSpot client logs the refused connection as { code, message }.
  const service = await build(t, baseEnv(undefined, { LOG_LEVEL: 'warn', HUBSPOT_MAX_RETRIES: '0' }), { logStream: logs.stream })
  await service.get('/chat-token', bearer(signSession({ sub: 'u1', email: 'ada@example.com' })))
  const failed = logs.lines().find(line => line.msg === 'hubspot connection failed')
  t.same(failed?.err, { message: (failed?.err as { message?: string } | undefined)?.message, code: 'ECONNREFUSED' })

  const direct = captureLogs()
  const { service: log } = createLoggers('info', direct.stream)
  const thrown = new TypeError('bad thing')
  log.error({ err: thrown }, 'thrown')
  log.error({ err: Object.assign(new Error('no stack'), { code: 'E_CODE', stack: '' }) }, 'stackless')
  log.error({ err: 'just text' }, 'text')
  const [first, second, third] = direct.lines()
  t.same(first?.err, { type: 'TypeError', message: 'bad thing', stack: thrown.stack })
  t.same(second?.err, { type: 'Error', message: 'no stack', code: 'E_CODE' })
  t.equal(third?.err, 'just text')
})

/** A script that logs through the service's own loggers on stdout, as a separate process. */
function loggingScript (body: string): string[] {
  const logging = JSON.stringify(join(PROJECT_ROOT, 'src/logging.ts'))
  return ['--import', TS_LOADER, '--input-type=module', '-e', `import { createLoggers } from ${logging}\nconst loggers = createLoggers('info')\n${body}`]
}

const accessLine = (n: number): string => `loggers.access({ reqId: 'r${n}', method: 'GET', path: '/chat-token', status: 200, ms: 0.1, code: undefined, user: undefined })`

t.test('stdout is batched, and a process that exits at once still writes every line, in order', async t => {
  // 400 lines are several 16 KiB batches and a tail still waiting when process.exit() runs.
  const lines = Array.from({ length: 400 }, (_, n) => n % 100 === 0 ? `loggers.service.info('service ${n}')` : accessLine(n))
  const finished = await runToExit(process.execPath, loggingScript(`${lines.join('\n')}\nprocess.exit(0)`))
  t.equal(finished.code, 0, finished.stderr)
  const written = finished.stdout.trim().split('\n').map(line => JSON.parse(line) as { reqId?: string; msg: string })
  t.equal(written.length, 400, 'nothing lost at exit')
  t.same(written.map(line => line.reqId ?? line.msg), lines.map((_, n) => n % 100 === 0 ? `service ${n}` : `r${n}`), 'both loggers\' lines in the order they were logged')
})

t.test('a batch that never fills still goes out within the flush interval, while the process runs on', async t => {
  const child = spawn(process.execPath, loggingScript(`${accessLine(1)}\nsetTimeout(() => {}, 60_000)`), { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } })
  t.teardown(() => { child.kill('SIGKILL') })
  let stdout = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  await until('the line is written without an exit', () => stdout.includes('"reqId":"r1"'), 20_000)
  t.equal(child.exitCode, null, 'the process is still running: the timer wrote the batch')
})
