import t from 'tap'
import { hasStackTrace, occupyPort, PROJECT_ROOT, runToExit, TS_LOADER } from '../process-helper.js'

/** `npm run demo` on a busy port: one line naming the port and the variable to change, exit 1. */

t.setTimeout(120_000)

const demo = `${PROJECT_ROOT}dev/demo/run.ts`

t.test('DEMO_PORT in use', async t => {
  const busy = await occupyPort(t)
  const run = await runToExit(process.execPath, ['--import', TS_LOADER, demo], { env: { DEMO_PORT: String(busy), DEMO_EMULATOR_PORT: '0', LOG_LEVEL: 'silent' } })
  t.equal(run.code, 1)
  t.equal(run.stderr, `chat-token demo: port ${busy} is already in use; set DEMO_PORT to another port, e.g. DEMO_PORT=${busy + 1} npm run demo\n`)
  t.notOk(hasStackTrace(run.stderr))
})

t.test('DEMO_EMULATOR_PORT in use', async t => {
  const busy = await occupyPort(t)
  const run = await runToExit(process.execPath, ['--import', TS_LOADER, demo], { env: { DEMO_PORT: '0', DEMO_EMULATOR_PORT: String(busy), LOG_LEVEL: 'silent' } })
  t.equal(run.code, 1)
  t.equal(run.stderr, `chat-token demo: port ${busy} is already in use; set DEMO_EMULATOR_PORT to another port, e.g. DEMO_EMULATOR_PORT=${busy + 1} npm run demo\n`)
})

t.test('a port that is not a number', async t => {
  const run = await runToExit(process.execPath, ['--import', TS_LOADER, demo], { env: { DEMO_PORT: 'eighty' } })
  t.equal(run.code, 1)
  t.equal(run.stderr, 'chat-token demo: DEMO_PORT must be a port number from 0 to 65535, got "eighty"\n')
})
