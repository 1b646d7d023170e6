import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parseDoctorArgs, USAGE, UsageError } from '../../src/doctor/args.js'
import { ACCESS_TOKEN, JWT_SECRET, signSession, startEmulator } from '../helper.js'
import { hasStackTrace, PROJECT_ROOT, runToExit, TS_LOADER } from '../process-helper.js'

/** The doctor as a process: arguments, environment and ./.env, human and JSON output, exit codes. */

t.setTimeout(180_000)

const cli = `${PROJECT_ROOT}src/doctor/cli.ts`
const runDoctor = (args: string[], env: Record<string, string>, options: { input?: string; cwd?: string } = {}) =>
  runToExit(process.execPath, ['--import', TS_LOADER, cli, ...args], { env, ...options })

t.test('every check passing: human output and exit 0; --jwt - reads the token from stdin; no secret printed', async t => {
  const emulator = await startEmulator(t)
  const jwt = signSession({ email: 'ada@example.com', given_name: 'Ada' })
  const run = await runDoctor(['--email', 'Ops@Company.example', '--jwt', '-'], { HUBSPOT_ACCESS_TOKEN: ACCESS_TOKEN, HUBSPOT_BASE_URL: emulator.url, JWT_SECRET }, { input: `${jwt}\n` })
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, /^chat-token doctor \(version \d+\.\d+\.\d+, Node v\d+/)
  t.match(run.stdout, /\n\[ok\] {3}configuration: valid\n/)
  t.match(run.stdout, /\n\[ok\] {3}hubspot: HubSpot minted a genuine identification token for ops@company\.example/)
  t.match(run.stdout, /\n\[ok\] {3}session: the session token is valid and maps to ada@example\.com, first name "Ada" \(from its claims\)\n/)
  t.match(run.stdout, /\n\[skip\] redis: no REDIS_URL/)
  t.match(run.stdout, /\nEvery check passed; 3 skipped\. Exit code 0\.\n$/)
  const token = emulator.calls()[0]!.token!
  for (const secret of [jwt, ACCESS_TOKEN, JWT_SECRET, token]) t.notOk(run.stdout.includes(secret) || run.stderr.includes(secret), 'no secret in the output')
})

t.test('--json: one document for scripts; a failed check exits 1', async t => {
  const emulator = await startEmulator(t, { accessTokens: ['another-token'] })
  const run = await runDoctor(['--json'], { HUBSPOT_ACCESS_TOKEN: ACCESS_TOKEN, HUBSPOT_BASE_URL: emulator.url, JWT_SECRET })
  t.equal(run.code, 1)
  const report = JSON.parse(run.stdout) as { ok: boolean; exitCode: number; checks: Array<{ name: string; status: string; facts: Record<string, unknown> }> }
  t.equal(report.ok, false)
  t.equal(report.exitCode, 1)
  t.same(report.checks.map(check => check.name), ['configuration', 'hubspot', 'session', 'jwks', 'user-directory', 'redis'])
  t.match(report.checks[1], { status: 'fail', facts: { status: 401, category: 'INVALID_AUTHENTICATION' } })
})

t.test('an invalid configuration: every problem listed, exit 2, no stack trace', async t => {
  const run = await runDoctor([], { HUBSPOT_TIMEOUT_MS: 'soon', REDIS_URL: 'redis://127.0.0.1:63a79' })
  t.equal(run.code, 2)
  t.match(run.stdout, /\[FAIL\] configuration: invalid: 4 problems; the service would not start\n/)
  for (const problem of ['HUBSPOT_ACCESS_TOKEN: is required', 'HUBSPOT_TIMEOUT_MS: must be a whole number', 'JWT_SECRET: exactly one of', 'REDIS_URL: is not a valid URL: its port "63a79"']) {
    t.match(run.stdout, `\n         ${problem}`)
  }
  t.match(run.stdout, /The configuration is invalid: fix it, then run the doctor again\. Exit code 2\.\n$/)
  t.notOk(hasStackTrace(run.stdout + run.stderr))
})

t.test('start-up warnings are shown, and ./.env is read as the service reads it (the environment wins)', async t => {
  const emulator = await startEmulator(t)
  const cwd = mkdtempSync(join(tmpdir(), 'chat-token-doctor-'))
  const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'pem', type: 'spki' }).toString()
  writeFileSync(join(cwd, '.env'), `HUBSPOT_ACCESS_TOKEN=${ACCESS_TOKEN}\nHUBSPOT_BASE_URL=http://127.0.0.1:9\nJWT_PUBLIC_KEY="${pem.replaceAll('\n', '\\n')}"\n`)
  const run = await runDoctor([], { HUBSPOT_BASE_URL: emulator.url }, { cwd })
  t.equal(run.code, 0, run.stdout)
  t.match(run.stdout, /\n\[warn\] configuration: valid, with 1 warning the service logs at start-up\n {9}JWT_AUDIENCE: JWT_AUDIENCE is not set/)
  t.match(run.stdout, `hubspot: reached ${emulator.url}`)
  t.match(run.stdout, /Every check passed \(1 with a warning\); 4 skipped\. Exit code 0\./)
})

t.test('bad usage exits 2 with the usage', async t => {
  const run = await runDoctor(['--frobnicate'], {})
  t.equal(run.code, 2)
  t.equal(run.stderr, `chat-token doctor: unknown argument "--frobnicate"\n${USAGE}\n`)
})

t.test('arguments: --email in the form the service sends, --jwt inline or as a value, each refusal named', async t => {
  t.same(parseDoctorArgs(['--email', ' Ops@Company.example ', '--jwt=a.b.c', '--json']), { email: 'ops@company.example', jwt: 'a.b.c', json: true, help: false })
  t.same(parseDoctorArgs(['--jwt', '-', '-h']), { email: undefined, jwt: '-', json: false, help: true })
  t.throws(() => parseDoctorArgs(['--email']), new UsageError('--email needs a value'))
  t.throws(() => parseDoctorArgs(['--jwt=']), new UsageError('--jwt needs a value'))
  t.throws(() => parseDoctorArgs(['--email', 'not-an-email']), new UsageError('--email: "not-an-email" is not an email address the service would send to HubSpot'))
  t.throws(() => parseDoctorArgs(['extra']), new UsageError('unknown argument "extra"'))
  t.match(USAGE, /Exit codes: 0 every check passed \(warnings allowed\), 1 a check failed, 2 bad usage or invalid configuration\./)
})
