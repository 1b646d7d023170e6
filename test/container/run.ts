import { randomBytes } from 'node:crypto'
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createSigner } from 'fast-jwt'
import { request } from 'undici'
import { DEV_FILE, PRODUCTION_FILE, documentedSettings, isolatedEnv, serviceEnvironment, writeEnvFile } from './compose.js'
import { detectCompose, detectEngine, eventually, freePort, must, run } from './engine.js'
import { BrowserLoad, type Outcome } from './load.js'

/**
 * `npm run test:container`: builds the image and checks it the way it runs in production (read-only
 * root filesystem, no capabilities, no new privileges), checks that the production compose file
 * refuses to start without real settings and passes every setting through, then brings up the dev
 * compose stack and gets tokens through the load balancer from both replicas. Works with podman
 * (prepared by ../shared/tools/container-env.sh) or Docker. Everything it starts is removed, also on
 * failure. Compose never sees this shell's settings or a ./.env (see compose.ts).
 */

process.chdir(fileURLToPath(new URL('../..', import.meta.url)))

const engine = detectEngine()
const compose = detectCompose()
const runId = `ct${process.pid}`
const IMAGE = 'chat-token:container-test'
const EMULATOR_IMAGE = 'chat-token-emulator:container-test'
const network = `${runId}-net`
const emulatorName = `${runId}-emulator`
const appName = `${runId}-app`
const composeProject = `${runId}stack`
const ACCESS_TOKEN = `ct-${randomBytes(12).toString('hex')}`
const JWT_SECRET = randomBytes(24).toString('base64url')
const DRAIN_MS = 2000
/**
 * Simulated browsers (sessions) of the replica-death check, each asking every REQUEST_INTERVAL_MS:
 * 20 requests/s in all, and 15 per browser and minute, well inside the per-caller limit (30 per 60 s).
 */
const BROWSERS = 80
const REQUEST_INTERVAL_MS = 4000
/** The public demo values of docker-compose.dev.yml. */
const DEMO_JWT_SECRET = 'demo-only-session-secret-never-use-in-production'
/** Where the test writes its env files, the token file and the copies of the compose files. */
const workDir = mkdtempSync(join(tmpdir(), 'chat-token-container-'))

/**
 * The contract's configuration variables. docker-compose.yml must pass each through, except those it
 * fixes: the listener, the metrics port, the demo switch, and the token, which comes as a file secret.
 */
const CONTRACT_SETTINGS = [
  'PORT', 'HOST', 'METRICS_PORT', 'LOG_LEVEL', 'TRUST_PROXY', 'HUBSPOT_ACCESS_TOKEN', 'HUBSPOT_ACCESS_TOKEN_FILE',
  'HUBSPOT_BASE_URL', 'HUBSPOT_API_VERSION', 'HUBSPOT_TIMEOUT_MS', 'HUBSPOT_MAX_RETRIES', 'HUBSPOT_RATE_LIMIT',
  'JWT_SECRET', 'JWT_PUBLIC_KEY', 'JWT_PUBLIC_KEY_FILE', 'JWT_JWKS_URL', 'JWT_JWKS_COOLDOWN_S', 'JWT_ALGORITHMS',
  'JWT_ISSUER', 'JWT_AUDIENCE', 'JWT_CLOCK_TOLERANCE_S', 'JWT_COOKIE', 'EMAIL_CLAIM', 'FIRST_NAME_CLAIM',
  'LAST_NAME_CLAIM', 'REQUIRE_EMAIL_VERIFIED', 'USER_LOOKUP_URL', 'USER_LOOKUP_AUTH', 'CORS_ORIGINS',
  'TOKEN_CACHE_TTL_S', 'REDIS_URL', 'TOKEN_CACHE_MAX_ENTRIES', 'HUBSPOT_RATE_LIMIT_REPLICAS', 'RATE_LIMIT_MAX',
  'RATE_LIMIT_WINDOW_S', 'SHUTDOWN_DRAIN_MS', 'HUBSPOT_ACCOUNT_TIME_ZONE', 'HUBSPOT_DAILY_LIMIT',
  'ALLOW_HTTP_UPSTREAMS', 'CHAT_TOKEN_DEMO'
]
const FIXED_IN_PRODUCTION: Record<string, string | undefined> = {
  PORT: undefined,
  HOST: undefined,
  METRICS_PORT: undefined,
  HUBSPOT_ACCESS_TOKEN: undefined,
  HUBSPOT_ACCESS_TOKEN_FILE: '/run/secrets/hubspot_access_token',
  CHAT_TOKEN_DEMO: 'false'
}

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; text: string }

async function get (url: string, headers: Record<string, string> = {}): Promise<Answer> {
  const answer = await request(url, { headers, headersTimeout: 15_000, bodyTimeout: 15_000 })
  return { status: answer.statusCode, headers: answer.headers, text: await answer.body.text() }
}

function sessionFor (email: string, key = JWT_SECRET): Record<string, string> {
  const jwt = createSigner({ key, expiresIn: 10 * 60 * 1000 })({ sub: email, email })
  return { authorization: `Bearer ${jwt}` }
}

function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

function expect (condition: unknown, message: string): void {
  if (!condition) throw new Error(message)
}

/** The host address of a published container port, as `engine port` prints it. */
async function publishedUrl (container: string, port: number): Promise<string> {
  const lines = (await must([engine, 'port', container, String(port)])).trim().split('\n')
  const line = lines.find(candidate => candidate.startsWith('127.0.0.1:')) ?? lines[0] ?? ''
  return `http://127.0.0.1:${line.slice(line.lastIndexOf(':') + 1)}`
}

/** The environment of every compose command: none of the variables the compose files substitute. */
const composeProcessEnv = isolatedEnv([PRODUCTION_FILE, DEV_FILE])
/** A compose command on one file, with the env file the test wrote (so ./.env is never read). */
function composeOn (file: string, envFile: string, project?: string): string[] {
  return [...compose, '-f', resolve(file), '--env-file', envFile, ...(project === undefined ? [] : ['-p', project])]
}

let passed = 0
const figures: string[] = []
/** The dev stack's compose command once it is being brought up: a failure report then shows its logs. */
let composeCommand: string[] | undefined

async function check (name: string, body: () => Promise<void>): Promise<void> {
  const startedAt = Date.now()
  await body()
  passed++
  process.stdout.write(`ok ${passed} - ${name} (${((Date.now() - startedAt) / 1000).toFixed(1)} s)\n`)
}

const cleanups: Array<() => Promise<unknown>> = []
async function cleanUp (): Promise<void> {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {})
  cleanups.length = 0
}

async function main (): Promise<void> {
  const startedAt = Date.now()
  process.stdout.write(`# container test with ${engine} and ${compose.join(' ')}\n`)
  if (engine === 'podman' && process.env.CONTAINERS_CONF === undefined) {
    process.stdout.write('# hint: where there is no Docker daemon, run eval "$(../shared/tools/container-env.sh up)" first\n')
  }
  let appUrl = ''
  let metricsUrl = ''
  let emulatorUrl = ''

  await check('the image builds', async () => {
    const buildStart = Date.now()
    await must([engine, 'build', '-t', IMAGE, '.'], { timeoutMs: 900_000 })
    const size = Number((await must([engine, 'image', 'inspect', IMAGE, '--format', '{{.Size}}'])).trim())
    figures.push(`image ${IMAGE}: ${(size / 1e6).toFixed(0)} MB, built in ${((Date.now() - buildStart) / 1000).toFixed(0)} s`)
  })

  await check('the image runs node as user node with NODE_ENV=production, exposes 3000 and 9464, has a HEALTHCHECK', async () => {
    const inspected = await must([engine, 'image', 'inspect', IMAGE])
    const [image] = JSON.parse(inspected) as Array<{ Config?: { User?: string; Env?: string[]; ExposedPorts?: Record<string, unknown> } }>
    expect(image?.Config?.User === 'node', `user is ${image?.Config?.User}`)
    expect(image?.Config?.Env?.includes('NODE_ENV=production'), 'NODE_ENV=production is not set')
    expect(image?.Config?.ExposedPorts?.['3000/tcp'] !== undefined && image?.Config?.ExposedPorts?.['9464/tcp'] !== undefined, 'ports 3000 and 9464 are not exposed')
    // podman 4.3's Docker API drops the healthcheck from `docker image inspect`; the text search covers both CLIs.
    expect(engine !== 'podman' || inspected.includes('/healthz'), 'no HEALTHCHECK on /healthz')
  })

  await check('no .env, key or secret reaches the image or its build stage (.dockerignore)', async () => {
    const listing = (await must([engine, 'run', '--rm', '--entrypoint', 'ls', IMAGE, '-A', '/app'])).trim().split('\n').sort()
    expect(listing.join(' ') === 'dist node_modules package.json', `/app holds: ${listing.join(' ')}`)
    // The rules themselves, on a build context holding every kind of file they must keep out.
    const context = join(workDir, 'context')
    const planted = ['.env', '.env.local', 'src/.env', 'src/.env.production', 'secrets/hubspot-token', 'session.pem', 'src/tls.key',
      'node_modules/left/index.js', 'src/node_modules/left/index.js', '.npmrc', '.git/config', 'test/a.test.ts', 'dev/a.ts', 'docker-compose.yml']
    const kept = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts/build-browser.mjs', 'src/server.ts', 'src/browser/tsconfig.json']
    for (const file of [...planted, ...kept]) {
      mkdirSync(dirname(join(context, file)), { recursive: true })
      writeFileSync(join(context, file), 'x')
    }
    copyFileSync('.dockerignore', join(context, '.dockerignore'))
    const probeDockerfile = join(workDir, 'probe.Dockerfile')
    writeFileSync(probeDockerfile, 'FROM node:24-bookworm-slim\nCOPY . /context/\n')
    const probeImage = `${IMAGE}-context-probe`
    cleanups.push(() => run([engine, 'rmi', '-f', probeImage]))
    await must([engine, 'build', '-q', '-t', probeImage, '-f', probeDockerfile, context])
    const copied = (await must([engine, 'run', '--rm', '--entrypoint', 'find', probeImage, '/context', '-type', 'f']))
      .trim().split('\n').map(path => path.slice('/context/'.length)).sort()
    expect(copied.join(' ') === kept.sort().join(' '), `the build context holds: ${copied.join(' ')}`)
  })

  await check('the emulator image builds', async () => {
    await must([engine, 'build', '-t', EMULATOR_IMAGE, '-f', 'dev/emulator.Dockerfile', 'dev'], { timeoutMs: 600_000 })
  })

  await check('the container starts with a read-only root filesystem, no capabilities and no new privileges', async () => {
    cleanups.push(() => run([engine, 'network', 'rm', network]))
    await must([engine, 'network', 'create', network])
    cleanups.push(() => run([engine, 'rm', '-f', emulatorName]))
    await must([engine, 'run', '-d', '--name', emulatorName, '--network', network, '-p', '127.0.0.1::8090',
      '-e', `EMULATOR_ACCESS_TOKENS=${ACCESS_TOKEN}`, EMULATOR_IMAGE])
    cleanups.push(() => run([engine, 'rm', '-f', appName]))
    await must([engine, 'run', '-d', '--name', appName, '--network', network,
      '--read-only', '--tmpfs', '/tmp', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges',
      '-p', '127.0.0.1::3000', '-p', '127.0.0.1::9464',
      // The emulator is plain http on a private network.
      '-e', `HUBSPOT_ACCESS_TOKEN=${ACCESS_TOKEN}`, '-e', `HUBSPOT_BASE_URL=http://${emulatorName}:8090`, '-e', 'ALLOW_HTTP_UPSTREAMS=true',
      '-e', `JWT_SECRET=${JWT_SECRET}`, '-e', `SHUTDOWN_DRAIN_MS=${DRAIN_MS}`, IMAGE])
    appUrl = await publishedUrl(appName, 3000)
    metricsUrl = await publishedUrl(appName, 9464)
    emulatorUrl = await publishedUrl(emulatorName, 8090)
    await eventually('the app to answer /healthz', 60_000, async () => (await get(`${appUrl}/healthz`)).status === 200 ? true : undefined)
    await eventually('the emulator to answer', 60_000, async () => (await get(`${emulatorUrl}/__emulator/health`)).status === 200 ? true : undefined)
  })

  await check('/healthz and /readyz answer 200', async () => {
    const health = await get(`${appUrl}/healthz`)
    expect(health.status === 200 && JSON.parse(health.text).status === 'ok', `/healthz: ${health.status} ${health.text}`)
    const ready = await get(`${appUrl}/readyz`)
    expect(ready.status === 200 && JSON.parse(ready.text).status === 'ready', `/readyz: ${ready.status} ${ready.text}`)
  })

  await check('the start-up line is logged with secrets masked, and the browser helper is in the image', async () => {
    const logs = (await must([engine, 'logs', appName])).split('\n')
    const line = logs.find(text => text.includes('"msg":"chat-token started"'))
    expect(line !== undefined && /"version":"\d+\.\d+\.\d+/.test(line) && line.includes('"accessToken":"[masked]"'), `start-up line: ${line}`)
    expect(!logs.join('\n').includes(ACCESS_TOKEN) && !logs.join('\n').includes(JWT_SECRET), 'a secret is in the logs')
    const helper = await get(`${appUrl}/chat-identity.js`)
    expect(helper.status === 200 && String(helper.headers['content-type']).startsWith('text/javascript'), `/chat-identity.js: ${helper.status}`)
  })

  await check('a /chat-token round trip against the emulator yields a token it issued', async () => {
    const answer = await get(`${appUrl}/chat-token`, sessionFor('ada@example.com'))
    expect(answer.status === 200, `/chat-token: ${answer.status} ${answer.text}`)
    const body = JSON.parse(answer.text) as { email: string; token: string; expiresAt: string }
    expect(body.email === 'ada@example.com' && body.token.length > 0 && !Number.isNaN(Date.parse(body.expiresAt)), `body: ${answer.text}`)
    const issued = await get(`${emulatorUrl}/__emulator/tokens/${encodeURIComponent(body.token)}`)
    expect(issued.status === 200, `the emulator does not know the token (${issued.status})`)
  })

  await check('metrics are served on the metrics port and not on the public one', async () => {
    const metrics = await get(`${metricsUrl}/metrics`)
    expect(metrics.status === 200 && /^chat_token_hubspot_requests_total\{outcome="ok",status="200"\} 1$/m.test(metrics.text), 'no HubSpot series')
    expect(/^process_resident_memory_bytes /m.test(metrics.text), 'no process metrics')
    expect((await get(`${appUrl}/metrics`)).status === 404, '/metrics answered on the public port')
  })

  await check('the process runs as uid 1000 without capabilities and cannot write outside /tmp', async () => {
    const status = await must([engine, 'exec', appName, 'cat', '/proc/1/status'])
    expect(/^Uid:\s+1000\s+1000\s+1000\s+1000$/m.test(status), `PID 1: ${status.match(/^Uid:.*$/m)?.[0]}`)
    expect(/^CapEff:\s+0+$/m.test(status), `PID 1: ${status.match(/^CapEff:.*$/m)?.[0]}`)
    expect((await run([engine, 'exec', appName, 'touch', '/app/probe'])).code !== 0, 'the root filesystem is writable')
    expect((await run([engine, 'exec', appName, 'touch', '/tmp/probe'])).code === 0, '/tmp is not writable')
  })

  await check('the image\'s HEALTHCHECK passes', async () => {
    if (engine === 'podman') {
      await must([engine, 'healthcheck', 'run', appName])
    } else {
      await eventually('docker to report the container healthy', 60_000, async () =>
        (await must([engine, 'inspect', '--format', '{{.State.Health.Status}}', appName])).trim() === 'healthy' ? true : undefined)
    }
  })

  await check(`stop drains: readiness 503 at once, still serving, exit code 0 within the drain time (${DRAIN_MS} ms)`, async () => {
    const stopStartedAt = Date.now()
    const stopping = must([engine, 'stop', '-t', '30', appName], { timeoutMs: 60_000 })
    await eventually('/readyz to turn 503', 5000, async () => (await get(`${appUrl}/readyz`)).status === 503 ? true : undefined)
    const readinessAfter = Date.now() - stopStartedAt
    const during = await get(`${appUrl}/chat-token`, sessionFor('grace@example.com'))
    expect(during.status === 200, `/chat-token during the drain: ${during.status}`)
    await stopping
    const stoppedAfter = Date.now() - stopStartedAt
    const exitCode = (await must([engine, 'inspect', '--format', '{{.State.ExitCode}}', appName])).trim()
    expect(exitCode === '0', `exit code ${exitCode}`)
    expect(stoppedAfter < DRAIN_MS + 5000, `stopping took ${stoppedAfter} ms`)
    const logs = (await run([engine, 'logs', appName])).stdout
    expect(logs.includes('"msg":"draining"') && logs.includes('"msg":"closed"'), 'no draining/closed log lines')
    figures.push(`stop: readiness 503 after ${readinessAfter} ms, stopped after ${stoppedAfter} ms (drain ${DRAIN_MS} ms), exit code ${exitCode}`)
  })
  await cleanUp()

  // --- docker-compose.yml: production, no defaults for credentials
  const tokenFile = join(workDir, 'hubspot-token')
  writeFileSync(tokenFile, `${ACCESS_TOKEN}\n`)
  // The replicas run as uid 1000 and compose mounts the secret file as it is.
  chmodSync(tokenFile, 0o644)
  const emptyEnvFile = writeEnvFile(join(workDir, 'empty.env'), {})
  const productionSettings = { HUBSPOT_ACCESS_TOKEN_FILE: tokenFile, CHAT_TOKEN_IMAGE: IMAGE }
  const productionEnvFile = writeEnvFile(join(workDir, 'production.env'), { ...productionSettings, JWT_JWKS_URL: 'https://idp.example.test/.well-known/jwks.json' })
  const productionProject = `${runId}prod`

  await check(`${PRODUCTION_FILE} refuses to start without the HubSpot token file, naming the variable`, async () => {
    const refused = await run([...composeOn(PRODUCTION_FILE, emptyEnvFile), 'config', '-q'], { env: composeProcessEnv })
    const message = `${refused.stdout}${refused.stderr}`.trim()
    expect(refused.code !== 0, `config passed without any setting:\n${message}`)
    expect(/Missing mandatory value/.test(message) && message.includes('set HUBSPOT_ACCESS_TOKEN_FILE to a file holding the HubSpot access token'), `message: ${message}`)
    figures.push(`${PRODUCTION_FILE} without settings: ${message.slice(message.lastIndexOf(': ') + 2)}`)
  })

  await check(`with the real settings ${PRODUCTION_FILE} passes; it passes every documented setting through and holds no demo value`, async () => {
    const config = await must([...composeOn(PRODUCTION_FILE, productionEnvFile), 'config'], { env: composeProcessEnv })
    const settings = new Set([...CONTRACT_SETTINGS, ...documentedSettings(readFileSync('docs/configuration.md', 'utf8'))])
    for (const service of ['app1', 'app2']) {
      const environment = serviceEnvironment(config, service)
      const missing = [...settings].filter(name => !(name in FIXED_IN_PRODUCTION) && !environment.has(name))
      expect(missing.length === 0, `${service} does not pass through: ${missing.join(', ')}`)
      for (const [name, value] of Object.entries(FIXED_IN_PRODUCTION)) {
        expect(environment.get(name) === value, `${service}: ${name} is ${environment.get(name) ?? 'unset'}, not ${value ?? 'unset'}`)
      }
      expect(environment.get('JWT_JWKS_URL') === 'https://idp.example.test/.well-known/jwks.json', `${service}: JWT_JWKS_URL is ${environment.get('JWT_JWKS_URL')}`)
      expect(environment.get('JWT_SECRET') === '', `${service}: JWT_SECRET is "${environment.get('JWT_SECRET')}"`)
    }
    expect(!config.includes(DEMO_JWT_SECRET) && !/emulator/i.test(config), 'the production configuration holds a demo value or the emulator')
    expect(!config.includes(ACCESS_TOKEN), 'the access token shows in the configuration')
  })

  await check(`${PRODUCTION_FILE}'s replicas read the token file and exit 1 without a JWT setting, or with the published demo secret`, async () => {
    cleanups.push(() => run([...composeOn(PRODUCTION_FILE, productionEnvFile, productionProject), 'down', '-v', '--remove-orphans'], { env: composeProcessEnv }))
    const cases: Array<{ env: Record<string, string>; says: string }> = [
      { env: {}, says: 'exactly one of JWT_SECRET, JWT_PUBLIC_KEY (or JWT_PUBLIC_KEY_FILE), JWT_JWKS_URL must be set (0 are)' },
      { env: { JWT_SECRET: DEMO_JWT_SECRET }, says: 'is the demo secret published in this repository' }
    ]
    for (const [index, { env, says }] of cases.entries()) {
      const envFile = writeEnvFile(join(workDir, `refused-${index}.env`), { ...productionSettings, ...env })
      const started = await run([...composeOn(PRODUCTION_FILE, envFile, productionProject), 'run', '--rm', '--no-deps', '-T', 'app1'], { env: composeProcessEnv, timeoutMs: 60_000 })
      const output = `${started.stdout}${started.stderr}`
      expect(started.code === 1, `exit code ${started.code} with ${JSON.stringify(env)}:\n${output}`)
      expect(output.includes('Invalid configuration (1 problem)') && output.includes(says), `with ${JSON.stringify(env)}:\n${output}`)
    }
  })

  const lbPort = await freePort()
  const emulatorPort = await freePort()
  // The replicas drain for 3 s: twice what the load balancer needs to take a draining one out.
  const devEnvFile = writeEnvFile(join(workDir, 'dev.env'), {
    LB_PORT: String(lbPort), EMULATOR_PORT: String(emulatorPort), SHUTDOWN_DRAIN_MS: '3000', CHAT_TOKEN_IMAGE: IMAGE
  })

  await check('a ./.env in the project folder cannot reach the stacks under test (every compose command gets --env-file)', async () => {
    // A copy of the project's compose files next to a .env such as `cp .env.example .env` leaves.
    const project = join(workDir, 'project')
    for (const dir of ['dev/lb', 'dev/hubspot-emulator']) mkdirSync(join(project, dir), { recursive: true })
    for (const file of [PRODUCTION_FILE, DEV_FILE]) copyFileSync(file, join(project, file))
    writeFileSync(join(project, '.env'), [
      'JWT_SECRET=', 'HUBSPOT_BASE_URL=https://api.hubapi.com', `HUBSPOT_ACCESS_TOKEN_FILE=${join(project, 'hostile-token')}`,
      'LOG_LEVEL=hostile-log-level', 'LB_PORT=1', 'CHAT_TOKEN_IMAGE=hostile/image', 'SHUTDOWN_DRAIN_MS=99', ''
    ].join('\n'))
    const hostile = /hostile|api\.hubapi\.com|\b99\b|127\.0\.0\.1:1:/
    for (const [file, envFile] of [[PRODUCTION_FILE, productionEnvFile], [DEV_FILE, devEnvFile]] as const) {
      // Without --env-file compose reads the project folder's .env: the copy is a fair trap.
      const trapped = await must([...compose, '-f', join(project, file), 'config'], { env: composeProcessEnv })
      expect(hostile.test(trapped), `${file}: the planted .env was not read at all, so this check proves nothing`)
      const config = await must([...compose, '-f', join(project, file), '--env-file', envFile, 'config'], { env: composeProcessEnv })
      expect(!hostile.test(config), `${file}: a value of the planted .env reached the configuration: ${hostile.exec(config)?.[0]}`)
    }
  })

  await check(`${DEV_FILE} is valid and runs in demo mode only`, async () => {
    const config = await must([...composeOn(DEV_FILE, devEnvFile), 'config'], { env: composeProcessEnv })
    for (const service of ['app1', 'app2']) {
      const environment = serviceEnvironment(config, service)
      expect(environment.get('CHAT_TOKEN_DEMO') === 'true' && environment.get('ALLOW_HTTP_UPSTREAMS') === 'true' && environment.get('HUBSPOT_BASE_URL') === 'http://emulator:8090',
        `${service}: ${JSON.stringify(Object.fromEntries(environment))}`)
    }
  })

  const lbUrl = `http://127.0.0.1:${lbPort}`
  const stackEmulatorUrl = `http://127.0.0.1:${emulatorPort}`
  const devCompose = composeOn(DEV_FILE, devEnvFile, composeProject)
  composeCommand = devCompose

  await check(`the dev stack (${DEV_FILE}) comes up with no credentials and the load balancer is ready`, async () => {
    cleanups.push(() => run([...devCompose, 'down', '-v', '--remove-orphans', '-t', '20'], { env: composeProcessEnv, timeoutMs: 180_000 }))
    const upStart = Date.now()
    // The replicas run the image built above (same Dockerfile and context); the others are built here.
    await must([...devCompose, 'build', 'emulator', 'lb'], { env: composeProcessEnv, timeoutMs: 900_000 })
    await must([...devCompose, 'up', '-d'], { env: composeProcessEnv, timeoutMs: 900_000 })
    await eventually('the load balancer to answer /readyz', 120_000, async () => (await get(`${lbUrl}/readyz`)).status === 200 ? true : undefined)
    // The replicas do not depend on the emulator, so it may still be starting.
    await eventually('the emulator to answer', 60_000, async () => (await get(`${stackEmulatorUrl}/__emulator/health`)).status === 200 ? true : undefined)
    figures.push(`compose dev stack up in ${((Date.now() - upStart) / 1000).toFixed(0)} s`)
  })

  await check('tokens through the load balancer come from both replicas, which share Redis', async () => {
    const session = sessionFor('lin@example.com', DEMO_JWT_SECRET)
    const servedBy = new Set<string>()
    const tokens = new Set<string>()
    for (let attempt = 0; attempt < 20 && servedBy.size < 2; attempt++) {
      const answer = await get(`${lbUrl}/chat-token`, session)
      expect(answer.status === 200, `/chat-token through the load balancer: ${answer.status} ${answer.text}`)
      servedBy.add(String(answer.headers['x-served-by']))
      tokens.add((JSON.parse(answer.text) as { token: string }).token)
    }
    expect(servedBy.has('app1') && servedBy.has('app2'), `served by ${[...servedBy].join(', ')}`)
    expect(tokens.size === 1, `${tokens.size} different tokens: the replicas do not share the Redis cache`)
    const calls = JSON.parse((await get(`${stackEmulatorUrl}/__emulator/calls`)).text) as Array<{ body?: { email?: string } }>
    const minted = calls.filter(call => call.body?.email === 'lin@example.com').length
    expect(minted === 1, `HubSpot was asked ${minted} times for one identity`)
    for (let attempt = 0; attempt < 4; attempt++) {
      const ready = await get(`${lbUrl}/readyz`)
      expect(ready.status === 200 && JSON.parse(ready.text).checks?.redis === 'ok', `${String(ready.headers['x-served-by'])} /readyz: ${ready.text}`)
    }
  })

  await check(`replica death under load from ${BROWSERS} browsers: SIGKILL one replica and start it again, then SIGTERM the other; every request answered`, async () => {
    const sessions = Array.from({ length: BROWSERS }, (_, index) => sessionFor(`browser-${index}@example.com`, DEMO_JWT_SECRET))
    const load = new BrowserLoad({ origin: lbUrl, path: '/chat-token', sessions, intervalMs: REQUEST_INTERVAL_MS, maxDurationMs: 120_000, answerTimeoutMs: 20_000 })
    const containerOf = async (service: string): Promise<string> => (await must([...devCompose, 'ps', '-q', service], { env: composeProcessEnv })).trim()
    const exitCodeOf = async (container: string): Promise<string> => (await must([engine, 'inspect', '--format', '{{.State.ExitCode}}', container])).trim()
    const timeline: string[] = []
    const startedAt = Date.now()
    const mark = (what: string): void => { timeline.push(`${((Date.now() - startedAt) / 1000).toFixed(1)} s ${what}`) }
    try {
      // Each browser's first request mints its token (once, shared through Redis); the rest are hits.
      await load.once('warm-up', 10)
      load.start('steady')
      await sleep(3000)
      const app1 = await containerOf('app1')
      load.phase = 'SIGKILL: killed'
      mark('SIGKILL app1')
      await must([...devCompose, 'kill', '-s', 'SIGKILL', 'app1'], { env: composeProcessEnv })
      await sleep(5000)
      const killedExit = await exitCodeOf(app1)
      expect(killedExit === '137', `app1 exit code after SIGKILL: ${killedExit}`)
      load.phase = 'SIGKILL: restarted'
      mark('start app1')
      await must([...devCompose, 'start', 'app1'], { env: composeProcessEnv, timeoutMs: 60_000 })
      await eventually('app1 to serve through the load balancer again', 60_000, async () =>
        load.outcomes.some(outcome => outcome.phase === 'SIGKILL: restarted' && outcome.servedBy === 'app1') ? true : undefined)
      mark('app1 serves again')
      await sleep(2000)
      const app2 = await containerOf('app2')
      load.phase = 'SIGTERM'
      mark('SIGTERM app2 (compose stop)')
      await must([...devCompose, 'stop', '-t', '15', 'app2'], { env: composeProcessEnv, timeoutMs: 60_000 })
      mark('app2 exited')
      const stoppedExit = await exitCodeOf(app2)
      expect(stoppedExit === '0', `app2 exit code after SIGTERM: ${stoppedExit}`)
      await sleep(REQUEST_INTERVAL_MS)
    } finally {
      await load.stop()
      mark('load stopped')
    }

    const describe = (label: string, phases: string[]): ReturnType<BrowserLoad['count']> => {
      const counted = load.count(phases)
      const problems = Object.entries(counted.problems).map(([key, count]) => `${count} × ${key}`).join(', ') || 'none'
      const errors = Object.entries(counted.errors).map(([key, count]) => `${count} × ${key}`).join(', ')
      const served = Object.entries(counted.servedBy).map(([key, count]) => `${key} ${count}`).join(', ')
      figures.push(`replica death, ${label}: ${counted.sent} sent, ${counted.ok} answered 200, problems: ${problems}, never answered: ${counted.neverAnswered}${errors === '' ? '' : ` (${errors})`}; served by ${served}`)
      return counted
    }
    const warmUp = describe('warm-up (one request per browser)', ['warm-up'])
    const steady = describe('steady load', ['steady'])
    const killed = describe('SIGKILL app1 until its restart', ['SIGKILL: killed'])
    const restarted = describe('app1 restarting and back', ['SIGKILL: restarted'])
    const terminated = describe('SIGTERM app2 (drain) and after', ['SIGTERM'])
    const slowest = Math.max(...load.outcomes.map(outcome => outcome.ms))
    const lbLog = (await run([...devCompose, 'logs', '--no-color', 'lb'], { env: composeProcessEnv })).stdout
    // httplog's "actconn/feconn/beconn/srv_conn/retries" field; "+" marks a redispatch to another server.
    const retried = [...lbLog.matchAll(/ \d+\/\d+\/\d+\/\d+\/\+?(\d+) \d+\/\d+ /g)].filter(match => Number(match[1]) > 0).length
    figures.push(`replica death: the load balancer retried ${retried} requests elsewhere; slowest answer ${slowest} ms; ${timeline.join(', ')}`)

    const all = load.count(load.outcomes.map(outcome => outcome.phase))
    expect(all.neverAnswered === 0, `${all.neverAnswered} requests were never answered: ${JSON.stringify(all.errors)}`)
    expect(warmUp.ok === warmUp.sent && steady.ok === steady.sent, `problems before any replica died: ${JSON.stringify({ ...warmUp.problems, ...steady.problems })}`)
    expect(killed.sent > 0 && restarted.sent > 0 && terminated.sent > 0, 'a phase sent no request')
    const retryable = (outcome: Outcome): boolean => outcome.status === 503 &&
      ((outcome.code === 'upstream_unavailable' && outcome.retryAfter !== undefined) || outcome.code === 'html')
    const badAfterKill = load.outcomes.filter(outcome => outcome.phase.startsWith('SIGKILL') && outcome.status !== 200 && !retryable(outcome))
    expect(badAfterKill.length === 0, `answers around the SIGKILL that are not a retryable 503: ${JSON.stringify(badAfterKill.slice(0, 5))}`)
    expect(terminated.ok === terminated.sent, `answers around the SIGTERM other than 200: ${JSON.stringify(terminated.problems)}`)
    expect((killed.servedBy.app2 ?? 0) > 0 && (restarted.servedBy.app1 ?? 0) > 0, 'the other replica did not take over, or app1 did not come back')
  })

  await check('the stacks tear down', async () => {
    await cleanUp()
  })
  figures.push(`whole container test: ${((Date.now() - startedAt) / 1000).toFixed(0)} s`)
}

const stopOnSignal = (signal: NodeJS.Signals): void => {
  process.stdout.write(`# ${signal}: removing what was started\n`)
  void cleanUp().finally(() => {
    rmSync(workDir, { recursive: true, force: true })
    process.exit(1)
  })
}
process.once('SIGINT', stopOnSignal)
process.once('SIGTERM', stopOnSignal)

main().then(
  () => {
    rmSync(workDir, { recursive: true, force: true })
    for (const figure of figures) process.stdout.write(`# ${figure}\n`)
    process.stdout.write(`container: ${passed} passed, 0 failed\n`)
  },
  async (error: unknown) => {
    process.stdout.write(`not ok ${passed + 1} - ${error instanceof Error ? error.message : String(error)}\n`)
    const logs = composeCommand !== undefined
      ? await run([...composeCommand, 'logs', '--no-color', '--tail', '30'], { env: composeProcessEnv })
      : await run([engine, 'logs', '--tail', '40', appName])
    process.stdout.write(`# logs:\n${logs.stdout}${logs.stderr}\n`)
    await cleanUp()
    rmSync(workDir, { recursive: true, force: true })
    for (const figure of figures) process.stdout.write(`# ${figure}\n`)
    process.stdout.write(`container: ${passed} passed, 1 failed\n`)
    process.exitCode = 1
  }
)
