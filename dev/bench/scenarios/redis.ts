import { Redis } from 'ioredis'
import { type LoadResult, runLoad } from '../load.js'
import { cpuSeconds, rssBytes } from '../processes.js'
import { sessionKeys, signMany } from '../sessions.js'
import { type Row, spread } from '../stats.js'
import { LOAD_CPU, REDIS_CPU, type Running, SERVER_CPU, startEmulator, startRedis, startService } from '../stack.js'
import { type Measured, row, warmHits, type RunSettings } from './throughput.js'

/**
 * Hits and misses in Redis mode: two replicas from dist/server.js sharing one bench-owned redis-server,
 * under the memory-mode hit and miss scenarios' load, spread evenly over both replicas. The replicas'
 * CPU is summed; Redis's CPU is read from its own pid and reported apart.
 */

const REPLICAS = 2

interface RedisMeasured extends Measured {
  redisCpuUsPerRequest: number
  /** Share of its core redis-server used during the run. */
  redisCpuShare: number
  redisCommandsPerRequest: number
}

interface RedisStack {
  redis: Running
  replicas: Running[]
  urls: string[]
  info: Redis
  stop: () => Promise<void>
}

async function startRedisStack (latencyMs: number): Promise<RedisStack> {
  const redis = await startRedis()
  const emulator = await startEmulator({ latencyMs })
  const keys = sessionKeys('HS256')
  const env = {
    ...keys.env,
    HUBSPOT_BASE_URL: emulator.url,
    HUBSPOT_RATE_LIMIT: '1000000/1s',
    HUBSPOT_RATE_LIMIT_REPLICAS: String(REPLICAS),
    REDIS_URL: redis.redisUrl
  }
  const replicas: Running[] = []
  const info = new Redis(redis.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 })
  const stop = async (): Promise<void> => {
    info.disconnect()
    for (const replica of replicas) await replica.process.stop()
    await emulator.process.stop()
    await redis.process.stop()
  }
  try {
    for (let i = 0; i < REPLICAS; i++) replicas.push(await startService(env, `replica-${'ab'[i] ?? i}`))
    await info.connect()
  } catch (error) {
    await stop()
    throw error
  }
  return { redis, replicas, urls: replicas.map(replica => `${replica.url}/chat-token`), info, stop }
}

async function commandsProcessed (info: Redis): Promise<number> {
  const match = /^total_commands_processed:(\d+)/m.exec(await info.info('stats'))
  if (match === null) throw new Error('INFO stats has no total_commands_processed')
  return Number(match[1])
}

async function measureRedis (stack: RedisStack, run: () => Promise<LoadResult>): Promise<RedisMeasured> {
  const pids = stack.replicas.map(replica => replica.process.pid)
  const serviceCpu = (): number => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)
  const commandsBefore = await commandsProcessed(stack.info)
  const serviceBefore = serviceCpu()
  const redisBefore = cpuSeconds(stack.redis.process.pid)
  const startedAt = performance.now()
  const load = await run()
  const elapsedS = (performance.now() - startedAt) / 1000
  const redisCpu = cpuSeconds(stack.redis.process.pid) - redisBefore
  const requests = Math.max(1, load.requests)
  return {
    load,
    cpuUsPerRequest: (serviceCpu() - serviceBefore) * 1e6 / requests,
    redisCpuUsPerRequest: redisCpu * 1e6 / requests,
    redisCpuShare: redisCpu / elapsedS,
    // Less the one INFO this reading sends.
    redisCommandsPerRequest: (await commandsProcessed(stack.info) - commandsBefore - 1) / requests,
    rssMb: pids.reduce((sum, pid) => sum + rssBytes(pid), 0) / 2 ** 20
  }
}

function redisRow (scenario: string, runs: RedisMeasured[], notes: string, baselineRps: number): Row {
  const redisShare = spread(runs.map(run => run.redisCpuShare * 100))
  const commands = spread(runs.map(run => run.redisCommandsPerRequest))
  const placement = `replicas on core ${SERVER_CPU}, Redis on core ${REDIS_CPU} with the load generator${REDIS_CPU === LOAD_CPU ? '' : ` (core ${LOAD_CPU})`}`
  const detail = `${notes}; ${placement}; server CPU and RSS summed over both replicas; Redis: ${commands.median.toFixed(1)} commands/req, ${redisShare.median.toFixed(0)} % of its core`
  return { ...row(scenario, runs, detail, baselineRps), redisCpuUsPerRequest: spread(runs.map(run => run.redisCpuUsPerRequest)) }
}

/**
 * The memory-mode hit scenario (HS256, `hitIdentities` identities, every one minted once, a second of
 * the measured load, then the runs) on two Redis-mode replicas, `connections` in all split between them.
 */
export async function redisHit (settings: RunSettings, baselineRps: number, memoryHitRps?: number): Promise<{ row: Row; ratioToMemoryHit?: number }> {
  const stack = await startRedisStack(0)
  try {
    const keys = sessionKeys('HS256')
    const tokens = signMany(keys, settings.hitIdentities)
    const rotate = await warmHits(stack.urls, tokens, settings.connections)
    const runs: RedisMeasured[] = []
    for (let i = 0; i < settings.iterations; i++) {
      runs.push(await measureRedis(stack, () => runLoad({ url: stack.urls, connections: settings.connections, durationS: settings.durationS, rotate })))
    }
    const rps = spread(runs.map(run => run.load.rps)).median
    const ratioToMemoryHit = memoryHitRps === undefined ? undefined : rps / memoryHitRps
    const ratio = ratioToMemoryHit === undefined ? 'no memory-mode hit in this run' : `${ratioToMemoryHit.toFixed(2)} × memory-mode hit HS256`
    const result = redisRow(`redis hit HS256: warm cache, ${settings.hitIdentities} identities, ${REPLICAS} replicas`, runs, `${settings.connections} connections in all; ${ratio}`, baselineRps)
    return { row: result, ...(ratioToMemoryHit === undefined ? {} : { ratioToMemoryHit }) }
  } finally {
    await stack.stop()
  }
}

/** The memory-mode miss at 0 ms (a new identity on every request) on two Redis-mode replicas. */
export async function redisMiss (settings: RunSettings, baselineRps: number): Promise<Row> {
  const stack = await startRedisStack(0)
  try {
    const keys = sessionKeys('HS256')
    const perRun = Math.max(2000, settings.durationS * 3000)
    const tokens = signMany(keys, perRun * (settings.iterations + 1), 'redis-miss')
    let offset = 0
    const load = async (): Promise<LoadResult> => {
      const start = offset
      offset += perRun
      return runLoad({ url: stack.urls, connections: settings.connections, amount: perRun, headersFor: n => ({ authorization: `Bearer ${tokens[start + n]}` }) })
    }
    await load()
    const runs: RedisMeasured[] = []
    for (let i = 0; i < settings.iterations; i++) runs.push(await measureRedis(stack, load))
    return redisRow(`redis miss: new identity per request, HubSpot at 0 ms, ${REPLICAS} replicas`, runs, `${settings.connections} connections in all`, baselineRps)
  } finally {
    await stack.stop()
  }
}
