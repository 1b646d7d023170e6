import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { until } from '../helper.js'
import { freePort } from '../redis-helper.js'

/**
 * A real Redis Sentinel deployment on loopback: a master, two replicas and three Sentinels (quorum 2),
 * each a redis-server process with its own temporary directory and no persistence, all killed at
 * teardown. Sentinels call a master down after 1 s without an answer.
 */

type Teardown = { teardown: (fn: () => unknown) => void }

export const MASTER_NAME = 'mymaster'
const DOWN_AFTER_MS = 1000

export interface RedisProcess {
  port: number
  kill: () => Promise<void>
}

export interface SentinelTopology {
  /** REDIS_URL in the sentinel form, listing the three Sentinels. */
  url: string
  sentinelPorts: number[]
  /** The data nodes, master first at the start, then its two replicas. */
  nodes: RedisProcess[]
  /** The port Sentinel names as master now. */
  masterPort: () => Promise<number>
  /** A connection to a Sentinel, for SENTINEL commands. */
  sentinel: Redis
  /** A connection to whichever node is master now (a new one after each call). */
  master: () => Promise<Redis>
}

/** Every server still running: a test process that dies without its teardown must not leave them behind. */
const running = new Set<ChildProcess>()
process.once('exit', () => { for (const child of running) child.kill('SIGKILL') })

/** What the Sentinels logged (their +switch-master, +tilt...), to explain a failover that took long. */
export const sentinelLog: string[] = []

async function startRedisProcess (t: Teardown, args: string[], ready: string): Promise<ChildProcess> {
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'ignore'] })
  running.add(child)
  child.once('exit', () => running.delete(child))
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  })
  let output = ''
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', code => reject(new Error(`redis-server ${args.join(' ')} exited (${code}): ${output}`)))
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (args.includes('--sentinel')) sentinelLog.push(...chunk.toString().split('\n').filter(line => line.includes(' # ')))
      if (output.includes(ready)) resolve()
    })
  })
  return child
}

function connection (port: number): Redis {
  const redis = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, retryStrategy: () => 200 })
  redis.on('error', () => {})
  return redis
}

async function startNode (t: Teardown, dir: string, replicaOf?: number): Promise<RedisProcess> {
  const port = await freePort()
  // A replica's full sync starts at once: by default a master waits 5 s for more replicas to share it.
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--repl-diskless-sync-delay', '0']
  if (replicaOf !== undefined) args.push('--replicaof', '127.0.0.1', String(replicaOf))
  const child = await startRedisProcess(t, args, 'Ready to accept connections')
  return {
    port,
    kill: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = once(child, 'exit')
      child.kill('SIGKILL')
      await exited
    }
  }
}

/** Whether the node on `port` is a replica of the one on `masterPort` with its link up (in sync). */
export async function inSyncWith (port: number, masterPort: number): Promise<boolean> {
  const probe = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  probe.on('error', () => {})
  try {
    await probe.connect()
    const info = await probe.info('replication')
    return /role:slave/.test(info) && info.includes(`master_port:${masterPort}\r\n`) && /master_link_status:up/.test(info)
  } catch {
    return false
  } finally {
    probe.disconnect()
  }
}

/**
 * A master, two replicas and three Sentinels monitoring them. Two replicas, so that after one failover
 * a replica in sync is there for the next at once: Sentinel turned a demoted master into a replica
 * only about 8 s after the failover (measured here). By default it returns once a failover could
 * happen; `{ failover: false }` returns as soon as the replicas are in sync, for a test that only asks
 * the Sentinels where the master is.
 */
export async function startSentinelTopology (t: Teardown, options: { failover?: boolean } = {}): Promise<SentinelTopology> {
  const dir = mkdtempSync(join(tmpdir(), 'chat-token-sentinel-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const master = await startNode(t, dir)
  const replicas = [await startNode(t, dir, master.port), await startNode(t, dir, master.port)]
  const sentinelPorts: number[] = []
  for (let i = 0; i < 3; i++) {
    const port = await freePort()
    const file = join(dir, `sentinel-${i}.conf`)
    // Sentinel rewrites its configuration file as it learns the topology: each needs a writable one.
    writeFileSync(file, [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${master.port} 2`,
      `sentinel down-after-milliseconds ${MASTER_NAME} ${DOWN_AFTER_MS}`,
      `sentinel failover-timeout ${MASTER_NAME} 4000`,
      `sentinel parallel-syncs ${MASTER_NAME} 1`,
      ''
    ].join('\n'))
    await startRedisProcess(t, [file, '--sentinel'], '+monitor master')
    sentinelPorts.push(port)
  }
  const sentinel = connection(sentinelPorts[0]!)
  t.teardown(() => sentinel.disconnect())
  await until('the replicas are in sync', async () => {
    for (const replica of replicas) if (!await inSyncWith(replica.port, master.port)) return false
    return true
  }, 20_000)
  // A failover needs every Sentinel to know the replicas and the other Sentinels (hello messages, every 2 s).
  if (options.failover !== false) await until('the Sentinels know the replicas and each other', async () => {
    for (const port of sentinelPorts) {
      const asked = connection(port)
      try {
        const known = await asked.call('SENTINEL', 'REPLICAS', MASTER_NAME) as unknown[]
        const others = await asked.call('SENTINEL', 'SENTINELS', MASTER_NAME) as unknown[]
        if (known.length < replicas.length || others.length < 2) return false
      } finally {
        asked.disconnect()
      }
    }
    return true
  }, 20_000)

  const masterPort = async (): Promise<number> => {
    const [, port] = await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME) as [string, string]
    return Number(port)
  }
  return {
    url: `redis+sentinel://${sentinelPorts.map(port => `127.0.0.1:${port}`).join(',')}/${MASTER_NAME}`,
    sentinelPorts,
    nodes: [master, ...replicas],
    masterPort,
    sentinel,
    master: async () => connection(await masterPort())
  }
}
