import { spawnSync } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { runLoad } from '../load.js'
import { collectGarbage } from '../inspector.js'
import { freePort, rssBytes } from '../processes.js'
import { sessionKeys, signMany } from '../sessions.js'
import { type Row, spread } from '../stats.js'
import { SERVER_CPU, startEmulator, startService } from '../stack.js'

/** Storm, memory and start-up: what a login wave, a full cache and autoscaling cost. */

export interface StormResult { row: Row; seconds: number; theoreticalS: number; emulator429: number }

/** Two replicas sharing Redis take a login wave against an emulator that enforces the same budget. */
export async function storm (identities: number, budgetPerSecond: number, redisUrl: string): Promise<StormResult> {
  const db = new URL(redisUrl)
  spawnSync('redis-cli', ['-h', db.hostname, '-p', db.port || '6379', '-n', db.pathname.slice(1) || '0', 'FLUSHDB'], { stdio: 'ignore' })
  // The emulator counts calls when they arrive, so it runs beside the replicas (which are nearly idle in
  // a storm), not beside the 200 browsers: sharing their busy core, it counted arrivals up to tens of
  // milliseconds late and answered 429s that HubSpot, counting on time, would not.
  const emulator = await startEmulator({ rateLimit: `${budgetPerSecond}/1s`, cpu: SERVER_CPU })
  const keys = sessionKeys('HS256')
  const env = { ...keys.env, HUBSPOT_BASE_URL: emulator.url, REDIS_URL: redisUrl, HUBSPOT_RATE_LIMIT: `${budgetPerSecond}/1s` }
  const replicas = [await startService(env, 'replica-a'), await startService(env, 'replica-b')]
  try {
    await warmUpReplicas(replicas, keys, budgetPerSecond)
    // The storm starts from an empty budget, cache and emulator window, with warm processes.
    spawnSync('redis-cli', ['-h', db.hostname, '-p', db.port || '6379', '-n', db.pathname.slice(1) || '0', 'FLUSHDB'], { stdio: 'ignore' })
    await (await fetch(`${emulator.url}/__emulator/reset`, { method: 'POST' })).arrayBuffer()
    const heldBackInWarmUp = await sendsHeldBack(replicas)
    const tokens = signMany(keys, identities, 'storm')
    let next = 0
    let retried = 0
    const refusals: Record<string, number> = {}
    const started = performance.now()
    // Each browser retries after Retry-After until served, as chat-identity.js does.
    const browser = async (): Promise<void> => {
      while (next < tokens.length) {
        const index = next++
        for (;;) {
          // undici.request, not fetch: fetch costs ~4× the CPU, which the replicas' Redis would then lack.
          const response = await request(`${replicas[index % 2]!.url}/chat-token`, { headers: { authorization: `Bearer ${tokens[index]}` } })
          const body = await response.body.text()
          if (response.statusCode === 200) break
          retried++
          const problem = JSON.parse(body) as { code?: string; detail?: string }
          const retryAfter = response.headers['retry-after']
          const reason = `${response.statusCode} ${problem.code ?? 'no code'}: ${problem.detail ?? ''} (Retry-After ${String(retryAfter ?? '-')})`
          refusals[reason] = (refusals[reason] ?? 0) + 1
          await sleep(Number(retryAfter ?? '1') * 1000)
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(200, identities) }, browser))
    const seconds = (performance.now() - started) / 1000
    const stats = await (await fetch(`${emulator.url}/__emulator/stats`)).json() as { rejected429: number; maxInWindow: number }
    const heldBack = await sendsHeldBack(replicas) - heldBackInWarmUp
    const theoreticalS = identities / budgetPerSecond
    return {
      seconds,
      theoreticalS,
      emulator429: stats.rejected429,
      row: {
        scenario: `storm: ${identities} identities, 2 replicas + Redis, budget ${budgetPerSecond}/s`,
        notes: `all served in ${seconds.toFixed(1)} s vs ${theoreticalS.toFixed(1)} s minimum (${(seconds / theoreticalS).toFixed(2)}×); emulator 429s: ${stats.rejected429}; max calls in any window: ${stats.maxInWindow}; sends held back for leaving late: ${heldBack}; client retries: ${retried}${retried === 0 ? '' : ` (${Object.entries(refusals).map(([reason, count]) => `${count}× ${reason}`).join(', ')})`}`
      }
    }
  } finally {
    for (const replica of replicas) await replica.process.stop()
    await emulator.process.stop()
  }
}

/**
 * Warm-up, as for every scenario: the replicas mint one budget's worth of tokens between them (compiling
 * the miss path and opening their HubSpot connections), then serve cache hits for those tokens.
 */
async function warmUpReplicas (replicas: Array<{ url: string }>, keys: ReturnType<typeof sessionKeys>, mints: number): Promise<void> {
  const tokens = signMany(keys, mints, 'storm-warm-up')
  const ask = async (index: number): Promise<void> => {
    const response = await request(`${replicas[index % replicas.length]!.url}/chat-token`, { headers: { authorization: `Bearer ${tokens[index % mints]}` } })
    await response.body.dump()
    if (response.statusCode !== 200) throw new Error(`storm warm-up: ${response.statusCode}`)
  }
  await Promise.all(tokens.map((_, index) => ask(index)))
  for (let round = 0; round < 10; round++) await Promise.all(tokens.map((_, index) => ask(index)))
}

/** The replicas' count of HubSpot calls held back for leaving late (chat_token_hubspot_sends_held_back_total). */
async function sendsHeldBack (replicas: Array<{ metricsUrl: string }>): Promise<number> {
  let total = 0
  for (const replica of replicas) {
    const series = /^chat_token_hubspot_sends_held_back_total (\d+)$/m.exec(await (await fetch(replica.metricsUrl)).text())
    if (series === null) throw new Error(`${replica.metricsUrl} has no chat_token_hubspot_sends_held_back_total`)
    total += Number(series[1])
  }
  return total
}

export interface MemoryResult { row: Row; idleMb: number; fullMb: number; settledMb: number }

/**
 * RSS of one memory-mode replica holding `identities` cached tokens, against the same replica idle. Both
 * are read after a full garbage collection (forced over the inspector, see inspector.ts): right after a
 * fill at ~1,500 new identities a second, V8 is still holding the fill's garbage and a young generation
 * grown to its maximum, which says how V8 sized its heap for that burst, not what the cache holds. The
 * unsettled figure is reported too.
 */
export async function memory (identities: number): Promise<MemoryResult> {
  const emulator = await startEmulator()
  const keys = sessionKeys('HS256')
  const inspectPort = await freePort()
  const service = await startService({ ...keys.env, HUBSPOT_BASE_URL: emulator.url, HUBSPOT_RATE_LIMIT: '1000000/1s', TOKEN_CACHE_MAX_ENTRIES: String(Math.max(identities, 100_000)) }, 'service', [`--inspect=127.0.0.1:${inspectPort}`])
  const mb = (bytes: number): number => bytes / 2 ** 20
  try {
    const tokens = signMany(keys, identities, 'mem')
    const url = `${service.url}/chat-token`
    // Idle: after requests at the fill's concurrency, so lazily loaded code and the connection pools the
    // fill opens (50 sockets in, as many out to HubSpot) count as idle, not as cache.
    await runLoad({ url, connections: 50, amount: 500, headersFor: n => ({ authorization: `Bearer ${tokens[n % 50]}` }) })
    const idleHeap = await collectGarbage(inspectPort)
    const idleMb = mb(rssBytes(service.process.pid))
    const filled = await runLoad({ url, connections: 50, amount: identities, headersFor: n => ({ authorization: `Bearer ${tokens[n]}` }) })
    const fullMb = mb(rssBytes(service.process.pid))
    const fullHeap = await collectGarbage(inspectPort)
    // A moment for V8 to hand the freed pages back to the system.
    await sleep(1000)
    const settledMb = mb(rssBytes(service.process.pid))
    return {
      idleMb,
      fullMb,
      settledMb,
      row: {
        scenario: `memory: ${identities} cached identities (memory mode)`,
        rssMb: spread([settledMb]),
        notes: `idle ${idleMb.toFixed(1)} MB → ${settledMb.toFixed(1)} MB after a full GC (+${(settledMb - idleMb).toFixed(1)} MB; live heap +${mb(fullHeap.usedBytes - idleHeap.usedBytes).toFixed(1)} MB, ${((fullHeap.usedBytes - idleHeap.usedBytes) / identities).toFixed(0)} B an identity); right after the fill, before any GC: ${fullMb.toFixed(1)} MB (+${(fullMb - idleMb).toFixed(1)} MB); ${filled.non2xx + filled.errors} failed fills`
      }
    }
  } finally {
    await service.process.stop()
    await emulator.process.stop()
  }
}

export async function startup (iterations: number): Promise<{ row: Row; medianMs: number }> {
  const emulator = await startEmulator()
  const keys = sessionKeys('HS256')
  const times: number[] = []
  try {
    for (let i = 0; i < iterations; i++) {
      const service = await startService({ ...keys.env, HUBSPOT_BASE_URL: emulator.url })
      times.push(service.startupMs)
      await service.process.stop()
    }
  } finally {
    await emulator.process.stop()
  }
  const ms = spread(times)
  return { medianMs: ms.median, row: { scenario: 'start-up: spawn to first /healthz 200', notes: `${ms.median.toFixed(0)} ms (${ms.min.toFixed(0)}–${ms.max.toFixed(0)})` } }
}
