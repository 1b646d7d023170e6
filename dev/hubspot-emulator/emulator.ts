import { setMaxListeners } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { handleApiRequest } from './api-handler.js'
import { handleControlRequest } from './control-api.js'
import { pathnameOf, sendJson } from './http-io.js'
import { resolveOptions } from './options.js'
import { isControlPath } from './routes.js'
import { EmulatorState } from './state.js'
import type { EmulatorOptions, HubSpotEmulator } from './types.js'

export type { Fault, FaultKind, FaultPlan } from './faults.js'
export type { EmulatorCall, EmulatorOptions, EmulatorStats, HubSpotEmulator, IssuedToken, RateLimitOptions } from './types.js'

/** Starts a HubSpot Visitor Identification API emulator; resolves once it is listening. */
export async function createHubSpotEmulator (options: EmulatorOptions = {}): Promise<HubSpotEmulator> {
  const resolved = resolveOptions(options)
  const lifetime = new AbortController()
  // Every delayed answer waits on this one signal, so the listener count is the number of answers in
  // flight: dozens under load is the design, not a leak, and Node's warning at eleven would be noise.
  setMaxListeners(Infinity, lifetime.signal)
  const state = new EmulatorState(resolved)

  const server = createServer((req, res) => {
    route(state, req, res, lifetime.signal).catch(() => {
      // Aborted uploads, close() cutting a delayed answer, or a bug: never leave the client waiting.
      if (res.headersSent || res.destroyed) res.destroy()
      else sendJson(res, 500, { error: 'emulator_error', message: 'the emulator failed to answer' })
    })
  })
  await listen(server, resolved.port, resolved.host)
  const { port } = server.address() as AddressInfo
  state.listeningOn(port)

  let closing: Promise<void> | undefined
  return {
    url: `http://${resolved.host.includes(':') ? `[${resolved.host}]` : resolved.host}:${port}`,
    port,
    calls: () => state.snapshotCalls(),
    issued: (token) => state.issued(token),
    setFaults: (faults) => state.setFaults(faults),
    configure: (patch) => state.configure(patch),
    reset: () => state.reset(),
    maxInWindow: () => state.limiter.maxInWindow,
    stats: () => state.stats(),
    openConnections: () => new Promise((resolve, reject) => {
      server.getConnections((error, count) => { if (error) reject(error); else resolve(count) })
    }),
    close: () => {
      closing ??= shutDown(server, state, lifetime)
      return closing
    }
  }
}

function route (state: EmulatorState, req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
  return isControlPath(pathnameOf(req.url))
    ? handleControlRequest(state, req, res)
    : handleApiRequest(state, req, res, signal)
}

function listen (server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

function shutDown (server: Server, state: EmulatorState, lifetime: AbortController): Promise<void> {
  lifetime.abort()
  state.destroyHeld()
  return new Promise((resolve) => {
    server.close(() => resolve())
    // Hanging, trickling and idle keep-alive sockets would otherwise hold close() open.
    server.closeAllConnections()
  })
}
