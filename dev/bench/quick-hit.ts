import { spawnSync } from 'node:child_process'
import { parseArgs } from 'node:util'
import { type LoadResult, runLoad } from './load.js'
import { cpuSeconds } from './processes.js'
import { storm } from './scenarios/capacity.js'
import { sessionKeys, signMany } from './sessions.js'
import { startEmulator, startService } from './stack.js'

/**
 * The token cache's numbers, quickly (after `npm run build`):
 *   node --import tsx dev/bench/quick-hit.ts [--only hit|storm] [--duration 10] [--identities 10000]
 *     [--connections 10] [--storm 1000] [--budget 50]
 * 1. warm-cache GET /chat-token against GET /healthz of the same process, in memory mode and in Redis
 *    mode (each request carries another identity's session JWT);
 * 2. a login storm of `--storm` identities on two replicas sharing Redis against an emulator enforcing
 *    `--budget` calls per second, against the theoretical minimum (identities ÷ budget).
 * Redis mode uses database 13 of BENCH_REDIS_URL's server (flushed first), the storm database 14.
 */
const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    identities: { type: 'string', default: '10000' },
    connections: { type: 'string', default: '10' },
    storm: { type: 'string', default: '1000' },
    only: { type: 'string' },
    budget: { type: 'string', default: '50' }
  }
})
const durationS = Number(values.duration)
const connections = Number(values.connections)
const server = new URL(process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379')
const redisDb = (db: number): string => `redis://${server.host}/${db}`
const out = (line: string): void => { process.stdout.write(`${line}\n`) }

async function hitAgainstHealth (mode: 'memory' | 'redis'): Promise<void> {
  if (mode === 'redis') spawnSync('redis-cli', ['-h', server.hostname, '-p', server.port || '6379', '-n', '13', 'FLUSHDB'], { stdio: 'ignore' })
  const emulator = await startEmulator()
  const keys = sessionKeys('HS256')
  const service = await startService({
    ...keys.env,
    HUBSPOT_BASE_URL: emulator.url,
    HUBSPOT_RATE_LIMIT: '1000000/1s',
    MAX_EVENT_LOOP_DELAY_MS: '0',
    ...(mode === 'redis' ? { REDIS_URL: redisDb(13) } : {})
  }, `service-${mode}`)
  try {
    const tokens = signMany(keys, Number(values.identities), mode)
    const url = `${service.url}/chat-token`
    const headersFor = (n: number): Record<string, string> => ({ authorization: `Bearer ${tokens[n % tokens.length]}` })
    await runLoad({ url, connections: 50, amount: tokens.length, headersFor })
    // Server CPU per request is steadier than req/s on a shared machine.
    const measured = async (run: () => Promise<LoadResult>): Promise<LoadResult & { cpuUs: number }> => {
      const before = cpuSeconds(service.process.pid)
      const load = await run()
      return { ...load, cpuUs: (cpuSeconds(service.process.pid) - before) * 1e6 / Math.max(1, load.requests) }
    }
    await runLoad({ url: `${service.url}/healthz`, connections, durationS: 1 })
    const health = await measured(() => runLoad({ url: `${service.url}/healthz`, connections, durationS }))
    const hit = await measured(() => runLoad({ url, connections, durationS, headersFor }))
    out(`| ${mode} | ${health.rps.toFixed(0)} | ${hit.rps.toFixed(0)} | ${(hit.rps / health.rps).toFixed(2)} | ${health.cpuUs.toFixed(0)} / ${hit.cpuUs.toFixed(0)} | ${hit.p50} / ${hit.p99} | ${hit.non2xx + hit.errors} |`)
  } finally {
    await service.process.stop()
    await emulator.process.stop()
  }
}

if (values.only === undefined || values.only === 'hit') {
  out(`warm cache, ${values.identities} identities, ${connections} connections, ${durationS} s per run`)
  out('| mode | /healthz req/s | /chat-token req/s | ratio | server CPU µs/req /healthz / /chat-token | /chat-token p50 / p99 ms | failures |')
  out('|---|---|---|---|---|---|---|')
  await hitAgainstHealth('memory')
  await hitAgainstHealth('redis')
}
if (values.only === undefined || values.only === 'storm') {
  const result = await storm(Number(values.storm), Number(values.budget), redisDb(14))
  out(`storm: ${result.row.notes}`)
}
