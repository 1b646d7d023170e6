import { randomBytes } from 'node:crypto'
import { rm, mkdtemp } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { buildBrowserHelper } from '../../scripts/build-browser.mjs'
import { buildApp } from '../../src/app.js'
import type { Env } from '../../src/config/types.js'
import { loadConfig } from '../../src/config/load-config.js'
import { createHubSpotEmulator, type HubSpotEmulator } from '../hubspot-emulator/emulator.js'
import { createDemoSite, type DemoSite, SESSION_COOKIE } from './site.js'

/**
 * Everything the demo needs, with no credentials: the HubSpot emulator, the chat-token service wired
 * to it (session cookie enabled), and the demo site in front of both on one URL. `npm run demo` and the
 * end-to-end tests both start here.
 */

export interface DemoStackOptions {
  host?: string
  /** The site's port, the one URL people open (0 = any free port). */
  port?: number
  emulatorPort?: number
  logLevel?: string
  /** Extra service environment (tests shorten retries, for instance). */
  serviceEnv?: Env
}

export interface DemoStack {
  url: string
  emulator: HubSpotEmulator
  service: FastifyInstance
  serviceUrl: string
  site: DemoSite
  close: () => Promise<void>
}

export async function startDemoStack (options: DemoStackOptions = {}): Promise<DemoStack> {
  const host = options.host ?? '127.0.0.1'
  const accessToken = `demo-${randomBytes(12).toString('hex')}`
  const jwtSecret = randomBytes(32).toString('base64url')
  // The helper is bundled from source on every start, so the demo never serves a stale dist/.
  const helperDir = await mkdtemp(join(tmpdir(), 'chat-token-demo-'))
  await buildBrowserHelper({ outdir: helperDir })

  // Everything is closed in the reverse order it started: at close(), or at once when a later part
  // fails to start (a port in use, say), so the error goes on without anything left listening.
  const started: Array<{ close: () => Promise<unknown> }> = [{ close: () => rm(helperDir, { recursive: true, force: true }) }]
  const closeAll = async (): Promise<void> => {
    for (const part of [...started].reverse()) await part.close()
  }
  try {
    return await startParts(options, host, { accessToken, jwtSecret, helperDir }, started, closeAll)
  } catch (error) {
    await closeAll().catch(() => {})
    throw error
  }
}

async function startParts (
  options: DemoStackOptions,
  host: string,
  { accessToken, jwtSecret, helperDir }: { accessToken: string; jwtSecret: string; helperDir: string },
  started: Array<{ close: () => Promise<unknown> }>,
  closeAll: () => Promise<void>
): Promise<DemoStack> {
  const emulator = await createHubSpotEmulator({ host, port: options.emulatorPort ?? 0, accessTokens: [accessToken] })
  started.push(emulator)
  const service = await buildApp(loadConfig({
    PORT: '0',
    HOST: host,
    LOG_LEVEL: options.logLevel ?? 'info',
    HUBSPOT_ACCESS_TOKEN: accessToken,
    HUBSPOT_BASE_URL: emulator.url,
    JWT_SECRET: jwtSecret,
    CHAT_TOKEN_DEMO: 'true',
    JWT_COOKIE: SESSION_COOKIE,
    // The site in front is the load balancer: trust its X-Forwarded-For for client addresses.
    TRUST_PROXY: host,
    ...options.serviceEnv
  }), { browserHelperDir: helperDir })
  started.push(service)
  await service.listen({ port: 0, host })
  const serviceUrl = `http://${host}:${(service.server.address() as AddressInfo).port}`

  const site = await createDemoSite({ serviceUrl, emulatorUrl: emulator.url, jwtSecret })
  started.push(site.app)
  await site.app.listen({ port: options.port ?? 0, host })
  const url = `http://${host}:${(site.app.server.address() as AddressInfo).port}`

  let closing: Promise<void> | undefined
  return {
    url,
    emulator,
    service,
    serviceUrl,
    site,
    close: () => {
      closing ??= closeAll()
      return closing
    }
  }
}
