import t from 'tap'
import { ACCESS_TOKEN, JWT_SECRET } from './helper.js'
import { hasStackTrace, occupyPort, PROJECT_ROOT, runToExit, TS_LOADER } from './process-helper.js'

/** src/server.ts with a port that cannot be opened: one line naming the variable, exit 1. */

t.setTimeout(120_000)

const serverEntry = `${PROJECT_ROOT}src/server.ts`
const env = {
  HOST: '127.0.0.1',
  HUBSPOT_ACCESS_TOKEN: ACCESS_TOKEN,
  HUBSPOT_BASE_URL: 'http://127.0.0.1:9',
  JWT_SECRET,
  LOG_LEVEL: 'warn'
}

t.test('PORT already in use: one line naming PORT and the port, no stack trace, exit 1', async t => {
  const busy = await occupyPort(t)
  const run = await runToExit(process.execPath, ['--import', TS_LOADER, serverEntry], { env: { ...env, PORT: String(busy), METRICS_PORT: '0' } })
  t.equal(run.code, 1)
  t.equal(run.stderr, `chat-token: PORT=${busy}: the port is already in use on 127.0.0.1; stop what listens there or set PORT to a free port\n`)
  t.notOk(hasStackTrace(run.stderr + run.stdout))
})

t.test('METRICS_PORT already in use: one line naming METRICS_PORT, exit 1', async t => {
  const busy = await occupyPort(t)
  const run = await runToExit(process.execPath, ['--import', TS_LOADER, serverEntry], { env: { ...env, PORT: '0', METRICS_PORT: String(busy) } })
  t.equal(run.code, 1)
  t.match(run.stderr, new RegExp(`^chat-token: METRICS_PORT=${busy}: the port is already in use on 127\\.0\\.0\\.1; .*METRICS_PORT.*\\n$`))
  t.equal(run.stderr.split('\n').length, 2, 'one line')
  t.notOk(hasStackTrace(run.stderr + run.stdout))
})
