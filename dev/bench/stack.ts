import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { type BenchProcess, freePort, startProcess, waitForHealthy } from './processes.js'

/** Starting the emulator, service replicas and the baseline as separate, pinned processes. */

export const BENCH_ACCESS_TOKEN = 'bench-access-token'
/** The service and the baseline get core 0; the load generator and the emulator share core 1. */
export const SERVER_CPU = 0
export const LOAD_CPU = 1
/**
 * The Redis scenarios' redis-server shares core 1 with the load generator (and the idle-during-hits
 * emulator), so that both replicas get core 0 to themselves, as the single memory-mode replica does.
 */
export const REDIS_CPU = LOAD_CPU

export interface Running {
  process: BenchProcess
  url: string
  startupMs: number
}

/** `cpu`: where the emulator runs (default: beside the load generator, leaving the server's core alone). */
export async function startEmulator (options: { latencyMs?: number; rateLimit?: string; cpu?: number } = {}): Promise<Running> {
  const port = await freePort()
  const since = performance.now()
  const process = startProcess('emulator', globalThis.process.execPath, [
    '--import', 'tsx', 'dev/hubspot-emulator/cli.ts',
    '--port', String(port), '--tokens', BENCH_ACCESS_TOKEN,
    '--latency-ms', String(options.latencyMs ?? 0),
    '--rate-limit', options.rateLimit ?? '1000000/10s',
    '--daily-limit', '1000000000'
  ], {}, options.cpu ?? LOAD_CPU)
  const url = `http://127.0.0.1:${port}`
  return { process, url, startupMs: await waitForHealthy(`${url}/__emulator/health`, since) }
}

export async function startService (env: Record<string, string>, name = 'service', nodeArgs: string[] = []): Promise<Running & { metricsUrl: string }> {
  const port = await freePort()
  const metricsPort = await freePort()
  const since = performance.now()
  const process = startProcess(name, globalThis.process.execPath, [...nodeArgs, 'dist/server.js'], {
    NODE_ENV: 'production',
    PORT: String(port),
    HOST: '127.0.0.1',
    METRICS_PORT: String(metricsPort),
    LOG_LEVEL: 'info',
    HUBSPOT_ACCESS_TOKEN: BENCH_ACCESS_TOKEN,
    RATE_LIMIT_MAX: '1000000',
    SHUTDOWN_DRAIN_MS: '0',
    ...env
  }, SERVER_CPU)
  const url = `http://127.0.0.1:${port}`
  return { process, url, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, startupMs: await waitForHealthy(`${url}/healthz`, since) }
}

export async function startBaseline (): Promise<Running> {
  const port = await freePort()
  const since = performance.now()
  const process = startProcess('baseline', globalThis.process.execPath, ['dev/bench/baseline-server.mjs'], { PORT: String(port) }, SERVER_CPU)
  const url = `http://127.0.0.1:${port}`
  return { process, url, startupMs: await waitForHealthy(`${url}/`, since) }
}

/** dev/bench/anchor-server.mjs: the verify-plus-lookup and verify-plus-one-call anchors. */
export async function startAnchor (env: Record<string, string>, options: { logging: boolean; upstreamUrl?: string; nodeArgs?: string[] }): Promise<Running> {
  const port = await freePort()
  const since = performance.now()
  const process = startProcess('anchor', globalThis.process.execPath, [...options.nodeArgs ?? [], 'dev/bench/anchor-server.mjs'], {
    ...env,
    PORT: String(port),
    ANCHOR_LOGGING: options.logging ? '1' : '0',
    ...(options.upstreamUrl === undefined ? {} : { UPSTREAM_URL: options.upstreamUrl, UPSTREAM_TOKEN: BENCH_ACCESS_TOKEN })
  }, SERVER_CPU)
  const url = `http://127.0.0.1:${port}`
  return { process, url, startupMs: await waitForHealthy(`${url}/`, since) }
}

/**
 * A bench-owned redis-server on a free port (no persistence), pinned to `cpu`: its pid is the one
 * process whose CPU the Redis scenarios read, and it starts empty for each scenario.
 */
export async function startRedis (cpu = REDIS_CPU): Promise<Running & { redisUrl: string }> {
  const port = await freePort()
  const since = performance.now()
  const process = startProcess('redis', 'redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'
  ], {}, cpu)
  const url = `redis://127.0.0.1:${port}`
  const deadline = since + 10_000
  while (!await answersPing(port)) {
    if (performance.now() > deadline) throw new Error(`redis-server on ${port} not answering PING after 10 s`)
    await sleep(5)
  }
  return { process, url, redisUrl: `${url}/0`, startupMs: performance.now() - since }
}

async function answersPing (port: number): Promise<boolean> {
  return new Promise(resolve => {
    const socket = connect(port, '127.0.0.1')
    let seen = ''
    socket.setTimeout(1000, () => { socket.destroy(); resolve(false) })
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', (chunk: Buffer) => {
      seen += chunk.toString()
      if (seen.includes('\r\n')) { socket.destroy(); resolve(seen.startsWith('+PONG')) }
    })
    socket.on('error', () => { socket.destroy(); resolve(false) })
  })
}
