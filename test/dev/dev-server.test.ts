import { spawn } from 'node:child_process'
import t from 'tap'
import { request } from 'undici'
import { buildBrowserHelper } from '../../scripts/build-browser.mjs'
import { ACCESS_TOKEN, JWT_SECRET, until } from '../helper.js'
import { PROJECT_ROOT } from '../process-helper.js'
import { shareOwnPriority } from '../process-priority.js'

/** `npm run dev` serves the browser helper bundled from the current source, like the built service. */

t.setTimeout(120_000)

t.test('npm run dev serves /chat-identity.js', async t => {
  const child = spawn('npm', ['run', 'dev'], {
    cwd: PROJECT_ROOT,
    // Its own process group, so the teardown ends npm, tsx watch and the service together.
    detached: true,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      // tap carries its coverage hook into child processes; this one runs the sources through tsx, which
      // prints each module on one line, and that coverage would not add up with the tests' own.
      _TAPJS_PROCESSINFO_COVERAGE_: '0',
      PORT: '0',
      HOST: '127.0.0.1',
      METRICS_PORT: '0',
      LOG_LEVEL: 'info',
      HUBSPOT_ACCESS_TOKEN: ACCESS_TOKEN,
      HUBSPOT_BASE_URL: 'http://127.0.0.1:9',
      JWT_SECRET
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => {
    try { process.kill(-child.pid!, 'SIGKILL') } catch { /* already gone */ }
  })
  // A session of its own is scheduled apart from this lane: see test/process-priority.ts.
  shareOwnPriority(child.pid!)
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })

  let url: string | undefined
  await until('the service has started', () => {
    url ??= /"url":"(http:\/\/127\.0\.0\.1:\d+)"[^\n]*"msg":"chat-token started"/.exec(output)?.[1]
    return url !== undefined
  }, 60_000)
  const helper = await request(`${url}/chat-identity.js`)
  const body = await helper.body.text()
  t.equal(helper.statusCode, 200, output)
  t.match(helper.headers['content-type'], /^text\/javascript/)
  t.equal(body, (await buildBrowserHelper())['chat-identity.js'], 'the bundle of the current source')
})
