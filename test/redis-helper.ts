import { type ChildProcess, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { Redis } from 'ioredis'

/**
 * Redis fixtures. Tests run against a real server: 127.0.0.1:6379 (or TEST_REDIS_URL), shared with
 * other test files, so each test works under its own key prefix and deletes only its own keys. Outage
 * tests start their own `redis-server` on a free port.
 */

type Teardown = { teardown: (fn: () => unknown) => void }

export const SHARED_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

/** A logger for a Redis link built by a test: its transitions are asserted on, not printed. */
export const silentLog = { info: () => {}, warn: () => {} } as never

async function reachable (url: string): Promise<boolean> {
  const probe = new Redis(url, { lazyConnect: true, connectTimeout: 500, maxRetriesPerRequest: 0, retryStrategy: () => null })
  probe.on('error', () => {})
  try {
    await probe.connect()
    return await probe.ping() === 'PONG'
  } catch {
    return false
  } finally {
    probe.disconnect()
  }
}

/**
 * `false` when Redis answers, else the reason to skip (tap prints it). In CI a missing Redis is a
 * failure, never a skip: the Redis-backed tests must run there.
 */
export async function redisSkipReason (): Promise<string | false> {
  if (await reachable(SHARED_REDIS_URL)) return false
  const reason = `Redis is not reachable at ${SHARED_REDIS_URL}: start redis-server to run the Redis-backed tests`
  if (process.env.CI !== undefined && process.env.CI !== '') throw new Error(`${reason} (CI is set, so this fails instead of skipping)`)
  return reason
}

/** A key prefix of its own for one test, and a connection to inspect Redis; its keys are deleted at the end. */
export function redisScope (t: Teardown, url = SHARED_REDIS_URL): { prefix: string; redis: Redis; keys: () => Promise<string[]> } {
  const prefix = `ct:test:${randomUUID().slice(0, 8)}:`
  const redis = new Redis(url, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  const keys = async (): Promise<string[]> => {
    const found: string[] = []
    let cursor = '0'
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      cursor = next
      found.push(...batch)
    } while (cursor !== '0')
    return found
  }
  t.teardown(async () => {
    const owned = await keys().catch(() => [])
    if (owned.length > 0) await redis.del(...owned).catch(() => {})
    redis.disconnect()
  })
  return { prefix, redis, keys }
}

export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

export interface OwnRedisServer {
  url: string
  /** SIGKILL: no goodbye to clients, like a crashed or partitioned Redis. */
  kill: () => Promise<void>
  start: () => Promise<void>
  /** SIGSTOP / SIGCONT: connections stay open but nothing answers, like a Redis stuck on a slow command. */
  freeze: () => void
  thaw: () => void
}

/**
 * A throwaway redis-server (no persistence) on a free port, killed at teardown. `args` go on its
 * command line (e.g. `['--maxmemory', '4mb', '--maxmemory-policy', 'allkeys-lru']`).
 */
export async function startRedisServer (t: Teardown, options: { args?: string[] } = {}): Promise<OwnRedisServer> {
  const port = await freePort()
  let child: ChildProcess | undefined
  const start = async (): Promise<void> => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...options.args ?? []]
    const started = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'ignore'] })
    child = started
    // A test process that dies without its teardown must not leave a server behind.
    process.once('exit', () => started.kill('SIGKILL'))
    let output = ''
    await new Promise<void>((resolve, reject) => {
      started.once('error', reject)
      started.once('exit', code => reject(new Error(`redis-server exited (${code}): ${output}`)))
      started.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        if (output.includes('Ready to accept connections')) resolve()
      })
    })
  }
  const kill = async (): Promise<void> => {
    const running = child
    child = undefined
    if (running === undefined || running.exitCode !== null) return
    const exited = once(running, 'exit')
    running.kill('SIGCONT')
    running.kill('SIGKILL')
    await exited
  }
  await start()
  t.teardown(kill)
  return {
    url: `redis://127.0.0.1:${port}`,
    kill,
    start,
    freeze: () => { child?.kill('SIGSTOP') },
    thaw: () => { child?.kill('SIGCONT') }
  }
}
