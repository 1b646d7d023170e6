import { readdirSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'
import { cpuSeconds, rssBytes } from '../bench/processes.js'
import { sessionKeys } from '../bench/sessions.js'
import { startEmulator, startService } from '../bench/stack.js'

/**
 * `npm run soak [-- --duration 60 --rate 200]`: mixed load with faults injected, reported every few
 * seconds; exits non-zero on an unexpected status, a lost request, or memory growth past the bound.
 */
const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '60' },
    rate: { type: 'string', default: '200' },
    'max-growth-mb': { type: 'string', default: '60' },
    redis: { type: 'string' }
  }
})
const durationS = Number(values.duration)
const ratePerSecond = Number(values.rate)
const maxGrowthMb = Number(values['max-growth-mb'])
const REPORT_EVERY_S = Math.max(2, Math.min(10, Math.floor(durationS / 6)))
const DEADLINE_MS = 1500
// Answered when HubSpot misbehaves, the budget or the per-caller limit is reached: all documented.
const expectedStatuses = new Set([200, 204, 401, 422, 429, 502, 503, 504])

const emulator = await startEmulator({ rateLimit: '100000/10s' })
await fetch(`${emulator.url}/__emulator/faults`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ random: { rate: 0.08, faults: [{ kind: 'status', status: 503 }, { kind: 'reset' }, { kind: 'delay', ms: 300 }, { kind: 'hang' }, { kind: 'status', status: 429, body: { status: 'error', policyName: 'TEN_SECONDLY_ROLLING' }, headers: { 'retry-after': '1' } }, { kind: 'malformed-json' }] } })
})
const keys = sessionKeys('HS256')
const service = await startService({
  ...keys.env,
  HUBSPOT_BASE_URL: emulator.url,
  HUBSPOT_TIMEOUT_MS: String(DEADLINE_MS),
  HUBSPOT_RATE_LIMIT: '100000/10s',
  RATE_LIMIT_MAX: '1000',
  ...(values.redis === undefined ? {} : { REDIS_URL: values.redis })
})
const agent = new Agent({ connections: 64 })
const returning = Array.from({ length: 500 }, (_, i) => keys.sign(i, 'soak'))

interface Window { sent: number; answered: number; lost: number; statuses: Record<number, number>; latencies: number[] }
const newWindow = (): Window => ({ sent: 0, answered: 0, lost: 0, statuses: {}, latencies: [] })
let window = newWindow()
const totals = newWindow()
const unexpected: string[] = []
let fresh = 0

function nextRequest (): { method: 'GET' | 'DELETE'; authorization: string } {
  const roll = Math.random()
  if (roll < 0.6) return { method: 'GET', authorization: `Bearer ${returning[Math.floor(Math.random() * returning.length)]}` }
  if (roll < 0.85) return { method: 'GET', authorization: `Bearer ${keys.sign(fresh++, 'fresh')}` }
  if (roll < 0.9) return { method: 'DELETE', authorization: `Bearer ${returning[Math.floor(Math.random() * returning.length)]}` }
  if (roll < 0.95) return { method: 'GET', authorization: 'Bearer not-a-token' }
  return { method: 'GET', authorization: `Bearer ${keys.sign(fresh++, 'soak').split('.').slice(0, 2).join('.')}.bad` }
}

async function fire (): Promise<void> {
  const { method, authorization } = nextRequest()
  window.sent++
  totals.sent++
  const started = performance.now()
  try {
    // A request still unanswered well past the service's deadline counts as lost.
    const response = await request(`${service.url}/chat-token`, { method, headers: { authorization }, dispatcher: agent, signal: AbortSignal.timeout(DEADLINE_MS + 2000) })
    await response.body.dump()
    const ms = performance.now() - started
    for (const bucket of [window, totals]) {
      bucket.answered++
      bucket.statuses[response.statusCode] = (bucket.statuses[response.statusCode] ?? 0) + 1
      bucket.latencies.push(ms)
    }
    if (!expectedStatuses.has(response.statusCode)) unexpected.push(`${method} → ${response.statusCode}`)
  } catch (error) {
    window.lost++
    totals.lost++
    unexpected.push(`lost: ${(error as Error).name}`)
  }
}

const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
}
const openHandles = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length
const rssMb = (): number => rssBytes(service.process.pid) / 2 ** 20

const startRss = rssMb()
const rssSamples: number[] = []
const inFlight = new Set<Promise<void>>()
const startedAt = performance.now()
let nextReport = REPORT_EVERY_S
process.stdout.write(`soak: ${durationS} s at ${ratePerSecond} req/s, faults on 8 % of HubSpot calls, RSS at start ${startRss.toFixed(1)} MB\n`)
process.stdout.write('   t s | sent | answered | lost | p50 ms | p99 ms | RSS MB | fds | CPU s | statuses\n')

while (performance.now() - startedAt < durationS * 1000) {
  const tick = performance.now()
  for (let i = 0; i < ratePerSecond / 20; i++) {
    const promise = fire()
    inFlight.add(promise)
    void promise.finally(() => inFlight.delete(promise))
  }
  await new Promise(resolve => setTimeout(resolve, Math.max(0, 50 - (performance.now() - tick))))
  const elapsedS = (performance.now() - startedAt) / 1000
  if (elapsedS >= nextReport) {
    nextReport += REPORT_EVERY_S
    const rss = rssMb()
    rssSamples.push(rss)
    process.stdout.write(`${elapsedS.toFixed(0).padStart(6)} | ${String(window.sent).padStart(4)} | ${String(window.answered).padStart(8)} | ${String(window.lost).padStart(4)} | ${percentile(window.latencies, 0.5).toFixed(1).padStart(6)} | ${percentile(window.latencies, 0.99).toFixed(1).padStart(6)} | ${rss.toFixed(1).padStart(6)} | ${String(openHandles(service.process.pid)).padStart(3)} | ${cpuSeconds(service.process.pid).toFixed(1).padStart(5)} | ${JSON.stringify(window.statuses)}\n`)
    window = newWindow()
  }
}
await Promise.all(inFlight)
const endRss = rssMb()
// Growth is judged from the first sample (after warm-up) to the end, not from the idle start.
const growth = endRss - (rssSamples[0] ?? startRss)
await agent.close()
await service.process.stop()
await emulator.process.stop()

const problems = [
  ...(unexpected.length > 0 ? [`${unexpected.length} unexpected answers, e.g. ${[...new Set(unexpected)].slice(0, 5).join(', ')}`] : []),
  ...(totals.sent !== totals.answered + totals.lost ? ['requests unaccounted for'] : []),
  ...(growth > maxGrowthMb ? [`RSS grew ${growth.toFixed(1)} MB after warm-up (bound ${maxGrowthMb} MB)`] : [])
]
process.stdout.write(`soak total: ${totals.sent} sent, ${totals.answered} answered, ${totals.lost} lost, p50 ${percentile(totals.latencies, 0.5).toFixed(1)} ms, p99 ${percentile(totals.latencies, 0.99).toFixed(1)} ms, RSS ${startRss.toFixed(1)} → ${endRss.toFixed(1)} MB, statuses ${JSON.stringify(totals.statuses)}\n`)
if (problems.length > 0) {
  process.stdout.write(`soak FAILED:\n${problems.map(problem => `  - ${problem}`).join('\n')}\n`)
  process.exit(1)
}
process.stdout.write('soak passed\n')
