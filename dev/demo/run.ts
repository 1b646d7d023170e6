import { startDemoStack } from './stack.js'

/**
 * `npm run demo`: the HubSpot emulator, the service wired to it and the demo site in front of both, on
 * one URL, with a fresh demo secret and access token, so everything runs locally with no credentials.
 */
const stack = await startDemoStack({
  port: Number(process.env.DEMO_PORT ?? 3000),
  emulatorPort: Number(process.env.DEMO_EMULATOR_PORT ?? 8090),
  logLevel: process.env.LOG_LEVEL ?? 'info'
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
