import { type LoadResult, runLoad } from '../load.js'
import { cpuSeconds, rssBytes } from '../processes.js'
import { type SessionAlgorithm, sessionKeys, signMany } from '../sessions.js'
import { type Row, spread } from '../stats.js'
import { BENCH_ACCESS_TOKEN, type Running, startAnchor, startBaseline, startEmulator, startService } from '../stack.js'

/** Baseline, cache hits and cache misses: requests per second, latency and server CPU per request. */

export interface RunSettings {
  iterations: number
  durationS: number
  connections: number
  hitIdentities: number
}

export interface Measured { load: LoadResult; cpuUsPerRequest: number; rssMb: number }

export async function measure (server: Running, run: () => Promise<LoadResult>): Promise<Measured> {
  const cpuBefore = cpuSeconds(server.process.pid)
  const load = await run()
  const cpuUsPerRequest = (cpuSeconds(server.process.pid) - cpuBefore) * 1e6 / Math.max(1, load.requests)
  return { load, cpuUsPerRequest, rssMb: rssBytes(server.process.pid) / 2 ** 20 }
}

export function row (scenario: string, runs: Measured[], notes: string, baselineRps?: number): Row {
  const rps = spread(runs.map(run => run.load.rps))
  const failures = runs.reduce((sum, run) => sum + run.load.errors + run.load.non2xx, 0)
  return {
    scenario,
    rps,
    p50Ms: spread(runs.map(run => run.load.p50)),
    p99Ms: spread(runs.map(run => run.load.p99)),
    cpuUsPerRequest: spread(runs.map(run => run.cpuUsPerRequest)),
    rssMb: spread(runs.map(run => run.rssMb)),
    loadCpuPercent: spread(runs.map(run => run.load.loadCpuShare * 100)),
    ...(baselineRps === undefined ? {} : { ratioToBaseline: rps.median / baselineRps }),
    notes: failures === 0 ? notes : `${notes}; ${failures} errors/non-2xx`
  }
}

export async function baseline (settings: RunSettings): Promise<Row> {
  const server = await startBaseline()
  try {
    await runLoad({ url: `${server.url}/`, connections: settings.connections, durationS: 1 })
    const runs: Measured[] = []
    for (let i = 0; i < settings.iterations; i++) {
      runs.push(await measure(server, () => runLoad({ url: `${server.url}/`, connections: settings.connections, durationS: settings.durationS })))
    }
    return row('baseline: bare Fastify route', runs, 'the anchor for ratios')
  } finally {
    await server.process.stop()
  }
}

/** Warm-up fills the cache with every identity once, then a second of the measured load. */
export async function warmHits (url: string | string[], tokens: string[], connections: number): Promise<Array<Record<string, string>>> {
  await runLoad({ url, connections: 50, amount: tokens.length, headersFor: n => ({ authorization: `Bearer ${tokens[n % tokens.length]}` }) })
  const rotate = tokens.map(token => ({ authorization: `Bearer ${token}` }))
  await runLoad({ url, connections, durationS: 1, rotate })
  return rotate
}

async function measureHits (server: Running, url: string, settings: RunSettings, tokens: string[]): Promise<Measured[]> {
  const rotate = await warmHits(url, tokens, settings.connections)
  const runs: Measured[] = []
  for (let i = 0; i < settings.iterations; i++) {
    runs.push(await measure(server, () => runLoad({ url, connections: settings.connections, durationS: settings.durationS, rotate })))
  }
  return runs
}

/**
 * The verify-plus-lookup anchor (Fastify + @fastify/jwt HS256 + a Map), without and with pino
 * request logging, under the hit scenario's exact load.
 */
export async function anchor (settings: RunSettings, logging: boolean, baselineRps: number): Promise<Row> {
  const keys = sessionKeys('HS256')
  const server = await startAnchor(keys.env, { logging })
  try {
    const runs = await measureHits(server, `${server.url}/chat-token`, settings, signMany(keys, settings.hitIdentities))
    return row(`anchor: Fastify + @fastify/jwt HS256 + Map${logging ? ' + pino request logging' : ''}`, runs, `${settings.connections} connections, the hit scenario's load`, baselineRps)
  } finally {
    await server.process.stop()
  }
}

export async function hit (settings: RunSettings, algorithm: SessionAlgorithm, baselineRps: number): Promise<Row> {
  const emulator = await startEmulator()
  const keys = sessionKeys(algorithm)
  const service = await startService({ ...keys.env, HUBSPOT_BASE_URL: emulator.url, HUBSPOT_RATE_LIMIT: '1000000/1s' })
  try {
    const runs = await measureHits(service, `${service.url}/chat-token`, settings, signMany(keys, settings.hitIdentities))
    return row(`hit ${algorithm}: warm cache, ${settings.hitIdentities} identities`, runs, `${settings.connections} connections`, baselineRps)
  } finally {
    await service.process.stop()
    await emulator.process.stop()
  }
}

/**
 * A new identity on every request against the emulator answering after `latencyMs`: the service, or
 * the miss anchor (verify + one undici call, nothing else) under the same load.
 */
export async function miss (settings: RunSettings, latencyMs: number, baselineRps: number, subject: 'service' | 'anchor' = 'service'): Promise<{ row: Row; emulatorP50: number }> {
  const emulator = await startEmulator({ latencyMs })
  const keys = sessionKeys('HS256')
  const server = subject === 'service'
    ? await startService({ ...keys.env, HUBSPOT_BASE_URL: emulator.url, HUBSPOT_RATE_LIMIT: '1000000/1s' })
    : await startAnchor(keys.env, { logging: false, upstreamUrl: emulator.url })
  try {
    // At 50 ms each connection does ~20 req/s; size the run by count so every request is a new identity.
    const perRun = latencyMs === 0 ? Math.max(2000, settings.durationS * 3000) : Math.max(200, settings.durationS * settings.connections * 15)
    const total = perRun * (settings.iterations + 1)
    const tokens = signMany(keys, total, `miss${latencyMs}`)
    let offset = 0
    const url = `${server.url}${subject === 'service' ? '/chat-token' : '/mint'}`
    const load = async (): Promise<LoadResult> => {
      const start = offset
      offset += perRun
      return runLoad({ url, connections: settings.connections, amount: perRun, headersFor: n => ({ authorization: `Bearer ${tokens[start + n]}` }) })
    }
    await load()
    const runs: Measured[] = []
    for (let i = 0; i < settings.iterations; i++) runs.push(await measure(server, load))
    const direct = await runLoad({
      url: `${emulator.url}/conversations/v3/visitor-identification/tokens/create`,
      method: 'POST',
      body: JSON.stringify({ email: 'direct@bench.example.com' }),
      connections: settings.connections,
      amount: perRun,
      headersFor: () => ({ authorization: `Bearer ${BENCH_ACCESS_TOKEN}`, 'content-type': 'application/json' })
    })
    const name = subject === 'service'
      ? `miss: new identity per request, HubSpot at ${latencyMs} ms`
      : `anchor: Fastify + @fastify/jwt HS256 + one undici call, HubSpot at ${latencyMs} ms`
    return { row: row(name, runs, `emulator alone p50 ${direct.p50} ms`, baselineRps), emulatorP50: direct.p50 }
  } finally {
    await server.process.stop()
    await emulator.process.stop()
  }
}
