import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import t from 'tap'
import { CliUsageError, parseCliArgs, parseRateLimit } from '../../dev/hubspot-emulator/cli-args.js'
import { TS_LOADER } from '../process-helper.js'

t.test('defaults: port 8090 and nothing else set', async t => {
  t.same(parseCliArgs([], {}), { kind: 'run', options: { port: 8090 }, faults: undefined })
  t.same(parseCliArgs(['--help'], {}), { kind: 'help' })
  t.same(parseCliArgs(['-h', '--port', 'x'], {}), { kind: 'help' })
})

t.test('environment variables, overridden by flags', async t => {
  const env = {
    EMULATOR_PORT: '9001',
    EMULATOR_HOST: '0.0.0.0',
    EMULATOR_ACCESS_TOKENS: 'a, b',
    EMULATOR_SCOPES: 'x,y',
    EMULATOR_TIER_ALLOWED: 'false',
    EMULATOR_LATENCY_MS: '25',
    EMULATOR_RATE_LIMIT: '190/10s',
    EMULATOR_DAILY_LIMIT: '650000',
    EMULATOR_RETRY_AFTER: 'true'
  }
  t.same(parseCliArgs([], env), {
    kind: 'run',
    options: {
      port: 9001,
      host: '0.0.0.0',
      accessTokens: ['a', 'b'],
      scopes: ['x', 'y'],
      tierAllowed: false,
      latencyMs: 25,
      rateLimit: { max: 190, intervalMs: 10_000 },
      dailyLimit: 650_000,
      retryAfterOn429: true
    },
    faults: undefined
  })
  const flags = ['--port', '0', '--tokens', 'c', '--scopes', '', '--rate-limit', '50/500ms', '--latency-ms', '0']
  t.match(parseCliArgs(flags, env), {
    options: { port: 0, accessTokens: ['c'], scopes: [], latencyMs: 0, rateLimit: { max: 50, intervalMs: 500 } }
  })
  t.match(parseCliArgs(['--no-tier', '--retry-after'], {}), { options: { tierAllowed: false, retryAfterOn429: true } })
  t.same(parseCliArgs([], { EMULATOR_PORT: '' }).kind, 'run', 'empty variables count as unset')
})

t.test('rate limit notation', async t => {
  t.same(parseRateLimit('100/10s'), { max: 100, intervalMs: 10_000 })
  t.same(parseRateLimit('100/1s'), { max: 100, intervalMs: 1000 })
  t.same(parseRateLimit('50/500ms'), { max: 50, intervalMs: 500 })
  for (const bad of ['100', '100/10', '100/10m', 'a/1s', '1/0s']) t.throws(() => parseRateLimit(bad), CliUsageError, bad)
})

t.test('random faults from the command line', async t => {
  t.same(parseCliArgs(['--fault-rate', '0.1'], {}), {
    kind: 'run',
    options: { port: 8090 },
    faults: { random: { rate: 0.1, faults: [{ kind: 'status', status: 503 }] } }
  })
  const command = parseCliArgs([], { EMULATOR_FAULT_RATE: '1', EMULATOR_FAULTS: 'reset,delay:20,trickle:5,redirect:/x,hang' })
  t.match(command, {
    faults: {
      random: {
        rate: 1,
        faults: [{ kind: 'reset' }, { kind: 'delay', ms: 20 }, { kind: 'trickle', bytesPerSecond: 5 }, { kind: 'redirect', location: '/x' }, { kind: 'hang' }]
      }
    }
  })
})

t.test('bad flags and values are usage errors', async t => {
  const bad: Array<[string[], Record<string, string>]> = [
    [['--bogus'], {}],
    [['extra'], {}],
    [['--port', 'abc'], {}],
    [['--port', '70000'], {}],
    [[], { EMULATOR_TIER_ALLOWED: 'maybe' }],
    [['--latency-ms', '-1'], {}],
    [['--rate-limit', 'fast'], {}],
    [['--fault-rate', '2'], {}],
    [['--fault-rate', 'x'], {}],
    [['--fault-rate', '0.5', '--faults', 'explode'], {}],
    [['--fault-rate', '0.5', '--faults', 'reset:1'], {}],
    [['--faults', 'reset'], {}]
  ]
  for (const [argv, env] of bad) t.throws(() => parseCliArgs(argv, env), CliUsageError, argv.join(' ') || JSON.stringify(env))
})

t.test('the CLI prints its URL, serves, and exits cleanly on SIGTERM', async t => {
  const child = spawn(process.execPath, ['--import', TS_LOADER, 'dev/hubspot-emulator/cli.ts', '--port', '0', '--tokens', 'cli-token'], {
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  const lines = createInterface({ input: child.stdout })
  const [line] = (await once(lines, 'line')) as [string]
  t.match(line, /^HubSpot emulator listening on http:\/\/127\.0\.0\.1:\d+ \(access token: cli-token\)$/)
  const url = /(http:\/\/\S+)/.exec(line)![1]!
  t.equal((await fetch(`${url}/__emulator/health`)).status, 200)
  const created = await fetch(`${url}/visitor-identification/v3/tokens/create`, {
    method: 'POST',
    headers: { authorization: 'Bearer cli-token', 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'ada@example.com' })
  })
  t.equal(created.status, 200)
  child.kill('SIGTERM')
  const [code] = (await once(child, 'exit')) as [number | null]
  t.equal(code, 0)
})

t.test('the CLI exits 1 on a bad flag', async t => {
  const child = spawn(process.execPath, ['--import', TS_LOADER, 'dev/hubspot-emulator/cli.ts', '--rate-limit', 'lots'], {
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const [code] = (await once(child, 'exit')) as [number | null]
  t.equal(code, 1)
  t.match(stderr, /rate limit "lots"/)
})
