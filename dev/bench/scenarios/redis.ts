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
 * CPU is summed; Redis's CPU is read from its own pid and reported apart. For the hit, two controls
 * tell the cost of Redis mode from the cost of two processes sharing one core: memory mode on the same
 * two replicas, and Redis mode on one replica (beside the memory-mode hit's one).
 */

const REPLICAS = 2

interface RedisMeasured extends Measured {
  redisCpuUsPerRequest: number
  /** Share of its core redis-server used during the run. */
  redisCpuShare: number
  redisCommandsPerRequest: number
}

interface RedisStack {
  redis: Running | undefined
  replicas: Running[]
  urls: string[]
  info: Redis | undefined
  stop: () => Promise<void>
}

/** `replicas` services on the emulator, sharing a Redis of their own unless `withRedis` is false (memory mode). */
async function startRedisStack (latencyMs: number, replicaCount = REPLICAS, withRedis = true): Promise<RedisStack> {
  const redis = withRedis ? await startRedis() : undefined
  const emulator = await startEmulator({ latencyMs })
  const keys = sessionKeys('HS256')
  const env = {
    ...keys.env,
    HUBSPOT_BASE_URL: emulator.url,
    HUBSPOT_RATE_LIMIT: '1000000/1s',
    HUBSPOT_RATE_LIMIT_REPLICAS: String(replicaCount),
    ...(redis === undefined ? {} : { REDIS_URL: redis.redisUrl })
  }
  const replicas: Running[] = []
  const info = redis === undefined ? undefined : new Redis(redis.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 })
  const stop = async (): Promise<void> => {
    info?.disconnect()
    for (const replica of replicas) await replica.process.stop()
    await emulator.process.stop()
    await redis?.process.stop()
  }
  try {
    for (let i = 0; i < replicaCount; i++) replicas.push(await startService(env, `replica-${'ab'[i] ?? i}`))
    await info?.connect()
  } catch (error) {
    await stop()
    throw error
  }
  return { redis, replicas, urls: replicas.map(replica => `${replica.url}/chat-token`), info, stop }
}

async function commandsProcessed (info: Redis | undefined): Promise<number> {
  if (info === undefined) return 0
  const match = /^total_commands_processed:(\d+)/m.exec(await info.info('stats'))
  if (match === null) throw new Error('INFO stats has no total_commands_processed')
  return Number(match[1])
}

async function measureRedis (stack: RedisStack, run: () => Promise<LoadResult>): Promise<RedisMeasured> {
  const pids = stack.replicas.map(replica => replica.process.pid)
  const serviceCpu = (): number => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)
  const commandsBefore = await commandsProcessed(stack.info)
  const serviceBefore = serviceCpu()
  const redisCpuSeconds = (): number => stack.redis === undefined ? 0 : cpuSeconds(stack.redis.process.pid)
  const redisBefore = redisCpuSeconds()
  const startedAt = performance.now()
  const load = await run()
  const elapsedS = (performance.now() - startedAt) / 1000
  const redisCpu = redisCpuSeconds() - redisBefore
  const requests = Math.max(1, load.requests)
  return {
    load,
    cpuUsPerRequest: (serviceCpu() - serviceBefore) * 1e6 / requests,
    redisCpuUsPerRequest: redisCpu * 1e6 / requests,
    redisCpuShare: redisCpu / elapsedS,
    // Less the one INFO this reading sends.
    redisCommandsPerRequest: stack.info === undefined ? 0 : (await commandsProcessed(stack.info) - commandsBefore - 1) / requests,
    rssMb: pids.reduce((sum, pid) => sum + rssBytes(pid), 0) / 2 ** 20
  }
}

function redisRow (scenario: string, runs: RedisMeasured[], notes: string, baselineRps: number, withRedis = true): Row {
  if (!withRedis) return row(scenario, runs, `${notes}; replicas on core ${SERVER_CPU}; server CPU and RSS summed over the replicas`, baselineRps)
  const redisShare = spread(runs.map(run => run.redisCpuShare * 100))
  const commands = spread(runs.map(run => run.redisCommandsPerRequest))
  const placement = `replicas on core ${SERVER_CPU}, Redis on core ${REDIS_CPU} with the load generator${REDIS_CPU === LOAD_CPU ? '' : ` (core ${LOAD_CPU})`}`
  const detail = `${notes}; ${placement}; server CPU and RSS summed over the replicas; Redis: ${commands.median.toFixed(1)} commands/req, ${redisShare.median.toFixed(0)} % of its core`
  return { ...row(scenario, runs, detail, baselineRps), redisCpuUsPerRequest: spread(runs.map(run => run.redisCpuUsPerRequest)) }
}

/**
 * The memory-mode hit scenario (HS256, `hitIdentities` identities, every one minted once, a second of
 * the measured load, then the runs) on `replicas` replicas, `connections` in all split between them:
 * in Redis mode unless `withRedis` is false.
 */
async function hitOn (settings: RunSettings, baselineRps: number, replicas: number, withRedis: boolean, notes: (rps: number) => string): Promise<Row> {
  const stack = await startRedisStack(0, replicas, withRedis)
  try {
    const keys = sessionKeys('HS256')
    const tokens = signMany(keys, settings.hitIdentities)
    const rotate = await warmHits(stack.urls, tokens, settings.connections)
    const runs: RedisMeasured[] = []
    for (let i = 0; i < settings.iterations; i++) {
      runs.push(await measureRedis(stack, () => runLoad({ url: stack.urls, connections: settings.connections, durationS: settings.durationS, rotate })))
    }
    const rps = spread(runs.map(run => run.load.rps)).median
    const mode = withRedis ? 'redis hit HS256' : 'hit HS256 (memory mode)'
    const scenario = `${mode}: warm cache, ${settings.hitIdentities} identities, ${replicas} replica${replicas === 1 ? '' : 's'}`
    return redisRow(scenario, runs, `${settings.connections} connections in all; ${notes(rps)}`, baselineRps, withRedis)
  } finally {
    await stack.stop()
  }
}

export interface RedisHitResult {
  rows: Row[]
  /** Redis mode on two replicas against the memory-mode hit (one replica): the issue's own ratio. */
  ratioToMemoryHit?: number
  /** Both modes on two replicas sharing one core. */
  ratioSamePlacement: number
  /** Both modes on one replica. */
  ratioPerReplica?: number
}

const ratioNote = (rps: number, against: number | undefined, what: string): string =>
  against === undefined ? `no ${what} in this run` : `${(rps / against).toFixed(2)} × ${what}`

/**
 * The Redis-mode hit on two replicas, with its two controls: memory mode on the same two replicas
 * (what two processes on one core cost whatever the mode), and Redis mode on one replica (against the
 * memory-mode hit's one replica, `memoryHitRps`).
 */
export async function redisHit (settings: RunSettings, baselineRps: number, memoryHitRps?: number): Promise<RedisHitResult> {
  const memoryPair = await hitOn(settings, baselineRps, REPLICAS, false, () => 'control: two processes on one core, no Redis')
  const memoryPairRps = memoryPair.rps!.median
  const redisPair = await hitOn(settings, baselineRps, REPLICAS, true, rps =>
    `${ratioNote(rps, memoryHitRps, 'memory-mode hit HS256 (1 replica)')}; ${ratioNote(rps, memoryPairRps, 'memory mode on 2 replicas')}`)
  const redisOne = await hitOn(settings, baselineRps, 1, true, rps => ratioNote(rps, memoryHitRps, 'memory-mode hit HS256 (1 replica)'))
  const redisPairRps = redisPair.rps!.median
  return {
    rows: [memoryPair, redisPair, redisOne],
    ...(memoryHitRps === undefined ? {} : { ratioToMemoryHit: redisPairRps / memoryHitRps, ratioPerReplica: redisOne.rps!.median / memoryHitRps }),
    ratioSamePlacement: redisPairRps / memoryPairRps
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
