import { spawn } from 'node:child_process'
import { connect } from 'node:net'
import { Writable } from 'node:stream'
import type { AddressInfo } from 'node:net'
import { createSigner } from 'fast-jwt'
import type { FastifyInstance } from 'fastify'
import { request } from 'undici'
import { rm } from 'node:fs/promises'
import { buildApp, type AppDependencies } from '../src/app.js'
import type { Env } from '../src/config/types.js'
import { loadConfig } from '../src/config/load-config.js'
import { DEFAULT_REDIS_KEY_PREFIX } from '../src/redis/connection.js'
import { defaultPendingForgetsFile } from '../src/tokens/pending-forgets.js'
import { createHubSpotEmulator, type EmulatorOptions, type EmulatorStats, type HubSpotEmulator } from '../dev/hubspot-emulator/emulator.js'
import { TS_LOADER } from './process-helper.js'

/**
 * Shared test fixtures, no stubs: a real emulator (on a socket) and, per test, the service built with
 * buildApp: asked through app.inject() (build) or listening on a port (startService).
 */

export const ACCESS_TOKEN = 'test-hubspot-access-token'
export const JWT_SECRET = 'test-session-secret-that-is-long-enough-for-hs256'

type Teardown = { teardown: (fn: () => unknown) => void }

export async function startEmulator (t: Teardown, options: EmulatorOptions = {}): Promise<HubSpotEmulator> {
  const emulator = await createHubSpotEmulator({ accessTokens: [ACCESS_TOKEN], ...options })
  t.teardown(() => emulator.close())
  return emulator
}

export function baseEnv (emulator: HubSpotEmulator | undefined, overrides: Env = {}): Env {
  const env: Record<string, string | undefined> = {
    HUBSPOT_ACCESS_TOKEN: ACCESS_TOKEN,
    HUBSPOT_BASE_URL: emulator?.url ?? 'http://127.0.0.1:9',
    JWT_SECRET,
    LOG_LEVEL: 'silent',
    ...overrides
  }
  // An override of undefined removes the variable (e.g. to swap JWT_SECRET for JWT_PUBLIC_KEY).
  return Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined))
}

export interface HttpAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  json: () => Record<string, unknown>
}

type Send = (method: 'GET' | 'DELETE' | 'POST' | 'PUT', path: string, headers?: Record<string, string>, body?: string) => Promise<HttpAnswer>

/** The service built for one test, asked through `app.inject()`: no socket, no port. */
export interface BuiltService {
  app: FastifyInstance
  /** The origin the service sees itself at (inject sends `Host: localhost:80`): a same-origin page's Origin. */
  origin: string
  get: (path: string, headers?: Record<string, string>) => Promise<HttpAnswer>
  send: Send
}

/** The service listening on a port of its own, for tests about sockets and for callers in other processes. */
export interface RunningService {
  app: FastifyInstance
  url: string
  get: (path: string, headers?: Record<string, string>) => Promise<HttpAnswer>
  send: Send
}

/**
 * buildApp with `env` as the environment, closed when the test ends, ready before it is returned.
 * Requests go through `app.inject()`: the whole request path (hooks, plugins, routes, problem answers)
 * without a socket. Tests about sockets, listener settings or connection handling use startService.
 */
export async function build (t: Teardown, env: Env, deps: AppDependencies = {}): Promise<BuiltService> {
  const config = loadConfig(env)
  const app = await buildApp(config, deps)
  t.teardown(() => app.close())
  // Logouts that could not reach the test's Redis stay in a file under the temporary directory (they
  // would be replayed by a later replica of the same Redis): no later test has that Redis.
  const redisUrl = config.redisUrl
  if (redisUrl !== undefined) t.teardown(() => rm(defaultPendingForgetsFile(redisUrl, deps.redisKeyPrefix ?? DEFAULT_REDIS_KEY_PREFIX), { force: true }))
  await app.ready()
  const send: Send = async (method, path, headers = {}, body) => {
    const response = await app.inject({ method, url: path, headers, ...(body === undefined ? {} : { payload: body }) })
    const text = response.body
    return { status: response.statusCode, headers: response.headers as HttpAnswer['headers'], text, json: () => JSON.parse(text) as Record<string, unknown> }
  }
  return { app, origin: 'http://localhost:80', send, get: (path, headers) => send('GET', path, headers) }
}

/** build, then listen on a free port of 127.0.0.1; requests go over real sockets (undici). */
export async function startService (t: Teardown, env: Env, deps: AppDependencies = {}): Promise<RunningService> {
  const { app } = await build(t, env, deps)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const send: Send = async (method, path, headers = {}, body) => {
    const response = await request(url + path, { method, headers, body })
    const text = await response.body.text()
    return { status: response.statusCode, headers: response.headers, text, json: () => JSON.parse(text) as Record<string, unknown> }
  }
  return { app, url, send, get: (path, headers) => send('GET', path, headers) }
}

/** Signs a session JWT; HS256 with the shared test secret unless told otherwise. */
export function signSession (claims: Record<string, unknown>, options: { key?: string; algorithm?: string; kid?: string; expiresInS?: number } = {}): string {
  const sign = createSigner({
    key: options.key ?? JWT_SECRET,
    algorithm: (options.algorithm ?? 'HS256') as 'HS256',
    ...(options.kid === undefined ? {} : { kid: options.kid }),
    ...(options.expiresInS === null ? {} : { expiresIn: (options.expiresInS ?? 600) * 1000 })
  })
  return sign(claims)
}

export function bearer (token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` }
}

/** A writable that keeps every log line, for log audits. */
export function captureLogs (): { stream: Writable; text: () => string; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString())
      callback()
    }
  })
  const text = (): string => chunks.join('')
  return { stream, text, lines: () => text().split('\n').filter(line => line !== '').map(line => JSON.parse(line) as Record<string, unknown>) }
}

/** A JWKS endpoint whose key set the test swaps, counting how often it is fetched. */
export async function startJwksServer (t: Teardown, initialKeys: object[]): Promise<{ url: string; fetches: () => number; setKeys: (keys: object[]) => void; setStatus: (status: number) => void }> {
  const { createServer } = await import('node:http')
  let keys = initialKeys
  let status = 200
  let fetches = 0
  const server = createServer((_request, response) => {
    fetches++
    response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`,
    fetches: () => fetches,
    setKeys: next => { keys = next },
    setStatus: next => { status = next }
  }
}

/** A clock that moves only when told: for TTLs, backoff and windows without sleeping. */
export function manualClock (start = Date.parse('2026-11-26T09:00:00Z')): { now: () => number; advance: (ms: number) => void; set: (at: number) => void } {
  let now = start
  return { now: () => now, advance: ms => { now += ms }, set: at => { now = at } }
}

/**
 * The emulator in a process of its own (`npm run emulator`), for load tests: there it stamps each call
 * when it arrives, as HubSpot does, instead of whenever the loaded test process gets round to it.
 */
export async function startEmulatorProcess (t: Teardown, args: string[] = []): Promise<{ url: string; stats: () => Promise<EmulatorStats>; callTimes: () => Promise<number[]> }> {
  const child = spawn(process.execPath, ['--import', TS_LOADER, 'dev/hubspot-emulator/cli.ts', '--port', '0', '--tokens', ACCESS_TOKEN, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  const url = await new Promise<string>((resolve, reject) => {
    let output = ''
    child.once('exit', code => reject(new Error(`emulator exited (${code}): ${output}`)))
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const match = /listening on (http:\/\/\S+)/.exec(output)
      if (match?.[1] !== undefined) resolve(match[1])
    })
  })
  const stats = async (): Promise<EmulatorStats> => {
    const response = await request(`${url}/__emulator/stats`)
    return await response.body.json() as EmulatorStats
  }
  /** When each call arrived (the emulator's clock, which is this machine's). */
  const callTimes = async (): Promise<number[]> => {
    const response = await request(`${url}/__emulator/calls`)
    return (await response.body.json() as Array<{ at: number }>).map(call => call.at)
  }
  return { url, stats, callTimes }
}

/** Polls a condition (not a fixed sleep): resolves as soon as it holds, fails after `ms`. */
export async function until (what: string, condition: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/** Sends raw bytes and resolves with everything the server wrote before closing the socket. */
export function rawExchange (url: string, bytes: string): Promise<string> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    const chunks: Buffer[] = []
    socket.on('data', chunk => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('close', () => resolve(Buffer.concat(chunks).toString()))
    socket.write(bytes)
  })
}
