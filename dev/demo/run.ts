import { startDemoStack } from './stack.js'

/**
 * `npm run demo`: the HubSpot emulator, the service wired to it and the demo site in front of both, on
 * one URL, with a fresh demo secret and access token, so everything runs locally with no credentials.
 */

/** Says what is wrong in one line and stops: a stack trace here would only hide which port to change. */
function fail (message: string): never {
  process.stderr.write(`chat-token demo: ${message}\n`)
  process.exit(1)
}

function portFrom (variable: string, fallback: number): number {
  const value = process.env[variable]?.trim() || String(fallback)
  if (!/^\d+$/.test(value) || Number(value) > 65535) fail(`${variable} must be a port number from 0 to 65535, got "${value}"`)
  return Number(value)
}

const ports = { DEMO_PORT: portFrom('DEMO_PORT', 3000), DEMO_EMULATOR_PORT: portFrom('DEMO_EMULATOR_PORT', 8090) }
const stack = await startDemoStack({
  port: ports.DEMO_PORT,
  emulatorPort: ports.DEMO_EMULATOR_PORT,
  logLevel: process.env.LOG_LEVEL ?? 'info'
}).catch((error: NodeJS.ErrnoException & { port?: number }) => {
  if (error.code !== 'EADDRINUSE' && error.code !== 'EACCES') throw error
  // The emulator listens first, so a port given to both is reported as the emulator's.
  const variable = error.port === ports.DEMO_EMULATOR_PORT ? 'DEMO_EMULATOR_PORT' : 'DEMO_PORT'
  const port = ports[variable]
  const why = error.code === 'EADDRINUSE' ? 'is already in use' : 'may not be opened by this user'
  return fail(`port ${port} ${why}; set ${variable} to another port, e.g. ${variable}=${port + 1} npm run demo`)
})

const sessionJwt = stack.site.sessionFor('ada@example.com')
process.stdout.write([
  '',
  `chat-token demo: open ${stack.url} and log in as any email; the chat box shows who HubSpot sees.`,
  `(The site routes /chat-token and /chat-identity.js to the service on ${stack.serviceUrl}; HubSpot emulator on ${stack.emulator.url}.)`,
  '',
  'Or get an identification token for the demo user (ada@example.com) without a browser:',
  '',
  `  curl -s ${stack.url}/chat-token -H 'Authorization: Bearer ${sessionJwt}'`,
  '',
  `Check it is genuine: curl -s ${stack.emulator.url}/__emulator/tokens/<token>`,
  'Ctrl-C stops everything.',
  ''
].join('\n'))

async function stop (): Promise<void> {
  await stack.close()
  process.exit(0)
}
process.once('SIGINT', () => { void stop() })
process.once('SIGTERM', () => { void stop() })
