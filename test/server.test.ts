import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { Pool, request } from 'undici'
import { ACCESS_TOKEN, JWT_SECRET, bearer, signSession, startEmulator } from './helper.js'
import { TS_LOADER } from './process-helper.js'

/**
 * The real process: src/server.ts through the tests' TypeScript loader, configured by environment only,
 * started in an empty directory (so a developer's .env cannot leak in), with the HubSpot emulator in
 * this process.
 */

// Five real processes, each compiling the sources at start: on a busy 2-core CI machine
// that outgrows the suite's 60 s per-file timeout.
t.setTimeout(240_000)

const serverEntry = fileURLToPath(new URL('../src/server.ts', import.meta.url))

type Teardown = { teardown: (fn: () => unknown) => void }
type LogLine = Record<string, unknown>

interface ServerProcess {
  child: ChildProcess
  lines: LogLine[]
  /** Resolves with the first log line matching, as soon as it is written. */
  line: (matches: (line: LogLine) => boolean, timeoutMs?: number) => Promise<LogLine>
  exited: Promise<{ code: number | null; at: number }>
  /** Resolves once the process has exited and everything it wrote has been read. */
  outputRead: Promise<void>
}

function startServer (t: Teardown, env: Record<string, string>): ServerProcess {
  const child = spawn(process.execPath, ['--import', TS_LOADER, serverEntry], {
    cwd: mkdtempSync(join(tmpdir(), 'chat-token-server-')),
    // Only what the service needs: the test runner's own NODE_OPTIONS and loaders stay out.
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const lines: LogLine[] = []
  const waiters = new Set<() => void>()
  let buffered = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    const complete = buffered.split('\n')
    buffered = complete.pop() ?? ''
    for (const text of complete) if (text.startsWith('{')) lines.push(JSON.parse(text) as LogLine)
    for (const wake of waiters) wake()
  })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const exited = new Promise<{ code: number | null; at: number }>(resolve => {
    child.once('exit', code => {
      for (const wake of waiters) wake()
      resolve({ code, at: Date.now() })
    })
  })
  const outputRead = new Promise<void>(resolve => { child.once('close', () => resolve()) })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })

  const line: ServerProcess['line'] = (matches, timeoutMs = 20_000) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`no such log line within ${timeoutMs} ms; stderr: ${stderr}`)) }, timeoutMs)
    function check (): void {
      const found = lines.find(matches)
      if (found !== undefined) {
        clearTimeout(timer)
        waiters.delete(check)
        resolve(found)
      } else if (child.exitCode !== null) {
        clearTimeout(timer)
        waiters.delete(check)
        reject(new Error(`the process exited (${child.exitCode}) first; stderr: ${stderr}`))
      }
    }
    waiters.add(check)
    check()
  })
  return { child, lines, line, exited, outputRead }
}

const started = (line: LogLine): boolean => line.msg === 'chat-token started'

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise(resolve => server.close(resolve))
  return port
}

function serviceEnv (emulatorUrl: string, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    PORT: '0',
    HOST: '127.0.0.1',
    METRICS_PORT: '0',
    HUBSPOT_ACCESS_TOKEN: ACCESS_TOKEN,
    HUBSPOT_BASE_URL: emulatorUrl,
    JWT_SECRET,
    ...overrides
  }
}

t.test('one start-up line gives the version, the Node version and the configuration, secrets masked', async t => {
  const emulator = await startEmulator(t)
  const metricsPort = await freePort()
  const server = startServer(t, serviceEnv(emulator.url, {
    METRICS_PORT: String(metricsPort),
    USER_LOOKUP_URL: 'http://127.0.0.1:9/users/{sub}',
    USER_LOOKUP_AUTH: 'Bearer directory-secret-value',
    REDIS_URL: 'redis://default:redis-secret-value@127.0.0.1:9',
    // The drain has tests of its own below; this one only needs the exit code.
    SHUTDOWN_DRAIN_MS: '0'
  }))
  const line = await server.line(started)
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  t.match(line, {
    level: 30,
    version: manifest.version,
    node: /^v\d+\.\d+\.\d+$/,
    url: /^http:\/\/127\.0\.0\.1:\d+$/,
    metricsUrl: `http://127.0.0.1:${metricsPort}`,
    config: { hubspot: { accessToken: '[masked]', baseUrl: emulator.url }, jwt: { key: { secret: '[masked]' } }, userLookup: { authorization: '[masked]' } }
  })
  t.equal(server.lines.filter(started).length, 1, 'exactly one such line')
  const everything = JSON.stringify(server.lines)
  for (const secret of [ACCESS_TOKEN, JWT_SECRET, 'directory-secret-value', 'redis-secret-value']) {
    t.notOk(everything.includes(secret), 'no secret in any log line')
  }

  // server.ts wires the metrics listener: /metrics there, and only there.
  const publicUrl = String(line.url)
  const onPublic = await request(`${publicUrl}/metrics`)
  await onPublic.body.dump()
  t.equal(onPublic.statusCode, 404)
  const scraped = await request(`http://127.0.0.1:${metricsPort}/metrics`)
  t.match(await scraped.body.text(), /chat_token_http_request_duration_seconds/)
  server.child.kill('SIGTERM')
  t.equal((await server.exited).code, 0)
})

t.test('SIGTERM under steady load: readiness turns 503, no request is lost, the process exits 0', async t => {
  const DRAIN_MS = 1500
  const STRAGGLER_DELAY_MS = DRAIN_MS + 1000
  const emulator = await startEmulator(t, { latencyMs: 10, rateLimit: { max: 1_000_000, intervalMs: 1000 } })
  const server = startServer(t, serviceEnv(emulator.url, {
    SHUTDOWN_DRAIN_MS: String(DRAIN_MS),
    RATE_LIMIT_MAX: '1000000',
    HUBSPOT_RATE_LIMIT: '1000000/1s'
  }))
  const url = String((await server.line(started)).url)
  // Like a load balancer: a pool of keep-alive connections, and a readiness probe every 100 ms that
  // takes the target out after two failures in a row.
  const pool = new Pool(url, { connections: 8 })
  t.teardown(() => pool.destroy())
  let routing = true
  let failuresInARow = 0
  let sigtermAt = 0
  let readinessFailedAt = 0
  const probe = (async () => {
    while (routing) {
      const status = await request(`${url}/readyz`).then(async answer => { await answer.body.dump(); return answer.statusCode }, () => 0)
      if (status !== 200) {
        if (readinessFailedAt === 0 && status === 503) readinessFailedAt = Date.now()
        if (++failuresInARow >= 2) routing = false
      } else {
        failuresInARow = 0
      }
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  })()

  const outcomes: Array<{ status: number | string; sentAt: number; endedAt: number }> = []
  const worker = async (id: number): Promise<void> => {
    const headers = bearer(signSession({ sub: `load-${id}`, email: `load-${id}@example.com` }))
    while (routing) {
      const sentAt = Date.now()
      const status = await pool.request({ path: '/chat-token', method: 'GET', headers })
        .then(async answer => { await answer.body.dump(); return answer.statusCode }, (error: Error) => error.message)
      outcomes.push({ status, sentAt, endedAt: Date.now() })
    }
  }
  const workers = Array.from({ length: 8 }, (_, id) => worker(id))

  // Steady state first: the load runs until a few hundred requests were answered.
  while (outcomes.length < 200) await new Promise(resolve => setImmediate(resolve))
  sigtermAt = Date.now()
  server.child.kill('SIGTERM')
  await Promise.all([probe, ...workers])

  // A request the balancer had already sent, slower than the rest of the drain: it must still be answered.
  emulator.setFaults({ sequence: [{ kind: 'delay', ms: STRAGGLER_DELAY_MS }] })
  const stragglerSentAt = Date.now()
  const straggler = await request(`${url}/chat-token`, { headers: bearer(signSession({ sub: 'late', email: 'late@example.com' })) })
  await straggler.body.dump()
  const stragglerEndedAt = Date.now()
  const exit = await server.exited

  const failed = outcomes.filter(outcome => outcome.status !== 200)
  const duringDrain = outcomes.filter(outcome => outcome.sentAt >= sigtermAt)
  t.equal(failed.length, 0, `no request failed (${JSON.stringify(failed.slice(0, 3))})`)
  t.ok(duringDrain.length > 0, 'requests kept being served after SIGTERM')
  t.ok(readinessFailedAt > 0 && readinessFailedAt - sigtermAt < 1000, `readiness turned 503 at once (${readinessFailedAt - sigtermAt} ms)`)
  t.ok(stragglerSentAt - sigtermAt < DRAIN_MS, 'the straggler was sent during the drain')
  t.equal(straggler.statusCode, 200, 'a request in flight when the server closed was answered')
  t.ok(exit.at >= stragglerEndedAt - 50, 'the process waited for it')
  t.equal(exit.code, 0)
  t.ok(exit.at - sigtermAt >= DRAIN_MS, 'the drain lasted SHUTDOWN_DRAIN_MS')
  t.ok(exit.at - sigtermAt < DRAIN_MS + STRAGGLER_DELAY_MS + 3000, 'and the exit came promptly after')
  t.ok(server.lines.some(line => line.msg === 'draining') && server.lines.some(line => line.msg === 'closed'))
  // stdout is buffered (logging.ts): the exit must write out every line still in the buffer.
  await server.outputRead
  const accessLines = server.lines.filter(line => line.msg === 'request' && line.path === '/chat-token')
  t.equal(accessLines.length, outcomes.length + 1, `every answered request has its access line, the last ones written at exit (${accessLines.length})`)
  t.ok(server.lines.at(-1)?.msg === 'closed', 'the last line written is the shutdown\'s own')
  t.comment(`drain figures: ${outcomes.length} requests in all, ${duringDrain.length} served after SIGTERM, ` +
    `readiness 503 after ${readinessFailedAt - sigtermAt} ms, load stopped after ${Math.max(...duringDrain.map(o => o.endedAt)) - sigtermAt} ms, ` +
    `straggler ${stragglerEndedAt - stragglerSentAt} ms, exit ${exit.at - sigtermAt} ms after SIGTERM (drain ${DRAIN_MS} ms), code ${exit.code}`)
})

t.test('a request from before SIGTERM that outlasts the drain is answered, and its connection does not hold the exit', async t => {
  const emulator = await startEmulator(t)
  const server = startServer(t, serviceEnv(emulator.url, { SHUTDOWN_DRAIN_MS: '500' }))
  const url = String((await server.line(started)).url)
  // A keep-alive connection, as a load balancer keeps: left idle after the answer, it would hold the
  // server's close open for KEEP_ALIVE_TIMEOUT_MS unless the answer closes it.
  const pool = new Pool(url, { connections: 1 })
  t.teardown(() => pool.destroy())
  // HubSpot answers a second after the 500 ms drain has ended.
  emulator.setFaults({ sequence: [{ kind: 'delay', ms: 1500 }] })
  const answer = pool.request({ path: '/chat-token', method: 'GET', headers: bearer(signSession({ sub: 'slow', email: 'slow@example.com' })) })
  while (emulator.calls().length === 0) await new Promise(resolve => setImmediate(resolve))
  server.child.kill('SIGTERM')
  const response = await answer
  await response.body.dump()
  const answeredAt = Date.now()
  const exit = await server.exited
  t.equal(response.statusCode, 200)
  t.equal(response.headers.connection, 'close')
  // A connection left open would hold the close until the shutdown budget (5 s later here): exit code 1.
  t.equal(exit.code, 0)
  t.ok(exit.at - answeredAt < 4000, `exited ${exit.at - answeredAt} ms after the answer`)
})

t.test('a second signal during the drain exits at once', async t => {
  const emulator = await startEmulator(t)
  const server = startServer(t, serviceEnv(emulator.url, { SHUTDOWN_DRAIN_MS: '60000' }))
  await server.line(started)
  server.child.kill('SIGTERM')
  await server.line(line => line.msg === 'draining')
  const secondAt = Date.now()
  server.child.kill('SIGTERM')
  const exit = await server.exited
  t.equal(exit.code, 1)
  t.ok(exit.at - secondAt < 2000, `exited ${exit.at - secondAt} ms after the second signal`)
})

t.test('SIGINT closes without the drain wait', async t => {
  const emulator = await startEmulator(t)
  const server = startServer(t, serviceEnv(emulator.url, { SHUTDOWN_DRAIN_MS: '60000' }))
  await server.line(started)
  const sentAt = Date.now()
  server.child.kill('SIGINT')
  const exit = await server.exited
  t.equal(exit.code, 0)
  t.ok(exit.at - sentAt < 5000, 'no 60 s drain for an interactive stop')
})
