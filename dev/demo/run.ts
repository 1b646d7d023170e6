import { randomBytes } from 'node:crypto'
import { createSigner } from 'fast-jwt'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { createHubSpotEmulator } from '../hubspot-emulator/emulator.js'

/**
 * `npm run demo`: the HubSpot emulator and the service wired to it, with a fresh demo secret and
 * access token, so everything runs locally with no credentials.
 */
const port = Number(process.env.DEMO_PORT ?? 3000)
const emulatorPort = Number(process.env.DEMO_EMULATOR_PORT ?? 8090)
const accessToken = `demo-${randomBytes(12).toString('hex')}`
const jwtSecret = randomBytes(32).toString('base64url')

const emulator = await createHubSpotEmulator({ port: emulatorPort, accessTokens: [accessToken] })
const config = loadConfig({
  PORT: String(port),
  HOST: '127.0.0.1',
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
  HUBSPOT_ACCESS_TOKEN: accessToken,
  HUBSPOT_BASE_URL: emulator.url,
  JWT_SECRET: jwtSecret
})
const app = await buildApp(config)
await app.listen({ port: config.port, host: config.host })

const sessionJwt = createSigner({ key: jwtSecret, expiresIn: 12 * 60 * 60 * 1000 })({
  sub: 'demo-user-1', email: 'ada@example.com', given_name: 'Ada', family_name: 'Lovelace', email_verified: true
})
process.stdout.write([
  '',
  `chat-token demo: service on http://127.0.0.1:${port}, HubSpot emulator on ${emulator.url}`,
  'Get an identification token for the demo user (ada@example.com):',
  '',
  `  curl -s http://127.0.0.1:${port}/chat-token -H 'Authorization: Bearer ${sessionJwt}'`,
  '',
  `Check it is genuine: curl -s ${emulator.url}/__emulator/tokens/<token>`,
  'Ctrl-C stops everything.',
  ''
].join('\n'))

async function stop (): Promise<void> {
  await app.close()
  await emulator.close()
  process.exit(0)
}
process.once('SIGINT', () => { void stop() })
process.once('SIGTERM', () => { void stop() })
