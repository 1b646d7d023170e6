import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { createSigner } from 'fast-jwt'
import { request } from 'undici'
import { detectCompose, detectEngine, eventually, freePort, must, run } from './engine.js'

/**
 * `npm run test:container`: builds the image and checks it the way it runs in production (read-only
 * root filesystem, no capabilities, no new privileges), then brings up the compose file's dev profile
 * and gets tokens through the load balancer from both replicas. Works with podman (prepared by
 * ../shared/tools/container-env.sh) or Docker. Everything it starts is removed, also on failure.
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

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; text: string }

async function get (url: string, headers: Record<string, string> = {}): Promise<Answer> {
  const answer = await request(url, { headers, headersTimeout: 15_000, bodyTimeout: 15_000 })
  return { status: answer.statusCode, headers: answer.headers, text: await answer.body.text() }
}

function sessionFor (email: string): Record<string, string> {
  const jwt = createSigner({ key: JWT_SECRET, expiresIn: 10 * 60 * 1000 })({ sub: email, email })
  return { authorization: `Bearer ${jwt}` }
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

const composeEnv = async (): Promise<NodeJS.ProcessEnv> => ({
  ...process.env,
  LB_PORT: String(await freePort()),
  EMULATOR_PORT: String(await freePort()),
  JWT_SECRET,
  SHUTDOWN_DRAIN_MS: '1000'
})

let passed = 0
const figures: string[] = []
/** Which logs a failure report shows. */
let stackUp = false

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
      '-e', `HUBSPOT_ACCESS_TOKEN=${ACCESS_TOKEN}`, '-e', `HUBSPOT_BASE_URL=http://${emulatorName}:8090`,
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

  await check('docker-compose.yml is valid', async () => {
    await must([...compose, '-f', 'docker-compose.yml', 'config', '-q'])
    await must([...compose, '-f', 'docker-compose.yml', '--profile', 'dev', 'config', '-q'])
  })

  const env = await composeEnv()
  const lbUrl = `http://127.0.0.1:${env.LB_PORT}`
  const stackEmulatorUrl = `http://127.0.0.1:${env.EMULATOR_PORT}`
  const composeCommand = [...compose, '-f', 'docker-compose.yml', '-p', composeProject, '--profile', 'dev']

  await check('the dev profile comes up with no credentials and the load balancer is ready', async () => {
    cleanups.push(() => run([...composeCommand, 'down', '-v', '--remove-orphans', '-t', '20'], { env, timeoutMs: 180_000 }))
    const upStart = Date.now()
    stackUp = true
    await must([...composeCommand, 'up', '-d', '--build'], { env, timeoutMs: 900_000 })
    await eventually('the load balancer to answer /readyz', 120_000, async () => (await get(`${lbUrl}/readyz`)).status === 200 ? true : undefined)
    // The replicas do not depend on the emulator (it is in a profile), so it may still be starting.
    await eventually('the emulator to answer', 60_000, async () => (await get(`${stackEmulatorUrl}/__emulator/health`)).status === 200 ? true : undefined)
    figures.push(`compose dev profile up in ${((Date.now() - upStart) / 1000).toFixed(0)} s`)
  })

  await check('tokens through the load balancer come from both replicas, which share Redis', async () => {
    const session = sessionFor('lin@example.com')
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

  await check('the stack tears down', async () => {
    await cleanUp()
  })
  figures.push(`whole container test: ${((Date.now() - startedAt) / 1000).toFixed(0)} s`)
}

const stopOnSignal = (signal: NodeJS.Signals): void => {
  process.stdout.write(`# ${signal}: removing what was started\n`)
  void cleanUp().finally(() => process.exit(1))
}
process.once('SIGINT', stopOnSignal)
process.once('SIGTERM', stopOnSignal)

main().then(
  () => {
    for (const figure of figures) process.stdout.write(`# ${figure}\n`)
    process.stdout.write(`container: ${passed} passed, 0 failed\n`)
  },
  async (error: unknown) => {
    process.stdout.write(`not ok ${passed + 1} - ${error instanceof Error ? error.message : String(error)}\n`)
    const logs = stackUp
      ? await run([...compose, '-f', 'docker-compose.yml', '-p', composeProject, '--profile', 'dev', 'logs', '--no-color', '--tail', '30'])
      : await run([engine, 'logs', '--tail', '40', appName])
    process.stdout.write(`# logs:\n${logs.stdout}${logs.stderr}\n`)
    await cleanUp()
    for (const figure of figures) process.stdout.write(`# ${figure}\n`)
    process.stdout.write(`container: ${passed} passed, 1 failed\n`)
    process.exitCode = 1
  }
)
