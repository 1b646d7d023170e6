import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'
import { cpuSeconds, rssBytes } from '../bench/processes.js'
import { sessionKeys } from '../bench/sessions.js'
import { startEmulator, startService } from '../bench/stack.js'
import { soakChart, type Series } from './chart.js'

/**
 * `npm run soak [-- --duration 600 --rate 200]`: mixed load with faults injected, reported every few
 * seconds. It fails on an unexpected status, a lost request, any answer later than HUBSPOT_TIMEOUT_MS +
 * 100 ms after the service read the request (the service's own access line says when), or growth past
 * the bounds in RSS, open handles or event-loop delay. Writes a JSON summary and an SVG chart to
 * dev/soak/results/ (latest.json, latest.svg).
 */
const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '60' },
    rate: { type: 'string', default: '200' },
    'max-growth-mb': { type: 'string', default: '60' },
    'max-fd-growth': { type: 'string', default: '200' },
    'max-loop-delay-ms': { type: 'string', default: '250' },
    redis: { type: 'string' }
  }
})
const durationS = Number(values.duration)
const ratePerSecond = Number(values.rate)
const maxGrowthMb = Number(values['max-growth-mb'])
const maxFdGrowth = Number(values['max-fd-growth'])
const maxLoopDelayMs = Number(values['max-loop-delay-ms'])
const REPORT_EVERY_S = Math.max(2, Math.min(10, Math.floor(durationS / 6)))
const DEADLINE_MS = 1500
/** The service's promise: an answer leaves at most this long after its deadline. */
const ALLOWED_OVERRUN_MS = 100
/** A request the caller has no answer for this long after sending it counts as lost. */
const LOST_AFTER_MS = DEADLINE_MS + 2000
// Answered when HubSpot misbehaves, the budget or the per-caller limit is reached: all documented.
const expectedStatuses = new Set([200, 204, 401, 422, 429, 502, 503, 504])
const resultsDir = new URL('./results/', import.meta.url)

// The service's stdout (its access lines) goes to a file, read at the end for the lateness of each answer.
const logDir = mkdtempSync(join(tmpdir(), 'chat-token-soak-'))
process.env.BENCH_LOG_DIR = logDir

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
// Enough sockets that no request waits in this process's own pool: a wait here is not the service's.
const agent = new Agent({ connections: 2048 })
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
    const response = await request(`${service.url}/chat-token`, { method, headers: { authorization }, dispatcher: agent, signal: AbortSignal.timeout(LOST_AFTER_MS) })
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

/** The service's event-loop delay p99 (ms) from its own metrics: what requests queued behind. */
async function loopDelayMs (): Promise<number> {
  const response = await request(service.metricsUrl)
  const text = await response.body.text()
  const match = /^nodejs_eventloop_lag_p99_seconds (\S+)$/m.exec(text)
  return match === null ? NaN : Number(match[1]) * 1000
}

interface Sample { t: number; rssMb: number; fds: number; loopDelayMs: number; cpuS: number; p99Ms: number }
const samples: Sample[] = []
const startRss = rssMb()
const inFlight = new Set<Promise<void>>()
const startedAt = performance.now()
let nextReport = REPORT_EVERY_S
process.stdout.write(`soak: ${durationS} s at ${ratePerSecond} req/s, faults on 8 % of HubSpot calls, deadline ${DEADLINE_MS} ms, RSS at start ${startRss.toFixed(1)} MB\n`)
process.stdout.write('   t s | sent | answered | lost | p50 ms | p99 ms | RSS MB | fds | loop p99 ms | CPU s | statuses\n')

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
    const sample: Sample = {
      t: elapsedS,
      rssMb: rssMb(),
      fds: openHandles(service.process.pid),
      loopDelayMs: await loopDelayMs(),
      cpuS: cpuSeconds(service.process.pid),
      p99Ms: percentile(window.latencies, 0.99)
    }
    samples.push(sample)
    process.stdout.write(`${elapsedS.toFixed(0).padStart(6)} | ${String(window.sent).padStart(4)} | ${String(window.answered).padStart(8)} | ${String(window.lost).padStart(4)} | ${percentile(window.latencies, 0.5).toFixed(1).padStart(6)} | ${sample.p99Ms.toFixed(1).padStart(6)} | ${sample.rssMb.toFixed(1).padStart(6)} | ${String(sample.fds).padStart(3)} | ${sample.loopDelayMs.toFixed(1).padStart(11)} | ${sample.cpuS.toFixed(1).padStart(5)} | ${JSON.stringify(window.statuses)}\n`)
    window = newWindow()
  }
}
await Promise.all(inFlight)
const endRss = rssMb()
await agent.close()
// A clean shutdown, as in production: the service writes out the log lines it still batches.
await service.process.stop('SIGTERM')
await emulator.process.stop()

// The service's own view of each answer: `ms` from reading the request to the answer's last byte.
const served = readFileSync(join(logDir, 'service.log'), 'utf8').split('\n')
  .filter(line => line.includes('"msg":"request"') && line.includes('"path":"/chat-token"'))
  .map(line => JSON.parse(line) as { ms: number; status: number })
const lateness = served.map(line => line.ms - DEADLINE_MS)
const overruns = lateness.filter(ms => ms > ALLOWED_OVERRUN_MS)
const first = samples[0]
const last = samples.at(-1)
// Growth is judged from the first sample (after warm-up) to the end, not from the idle start.
const growthMb = endRss - (first?.rssMb ?? startRss)
const fdGrowth = (last?.fds ?? 0) - (first?.fds ?? 0)
const worstLoopDelayMs = Math.max(0, ...samples.map(sample => sample.loopDelayMs).filter(Number.isFinite))

const summary = {
  date: new Date().toISOString(),
  durationS,
  ratePerSecond,
  deadlineMs: DEADLINE_MS,
  sent: totals.sent,
  answered: totals.answered,
  lost: totals.lost,
  statuses: totals.statuses,
  callerP50Ms: percentile(totals.latencies, 0.5),
  callerP99Ms: percentile(totals.latencies, 0.99),
  serviceAnswers: served.length,
  latenessMs: { p50: percentile(lateness, 0.5), p99: percentile(lateness, 0.99), max: Math.max(-DEADLINE_MS, ...lateness), over: overruns.length },
  rssMb: { start: startRss, firstSample: first?.rssMb, end: endRss, growth: growthMb, bound: maxGrowthMb },
  fds: { first: first?.fds, last: last?.fds, growth: fdGrowth, bound: maxFdGrowth },
  loopDelayMs: { worstP99: worstLoopDelayMs, bound: maxLoopDelayMs },
  samples
}
mkdirSync(resultsDir, { recursive: true })
writeFileSync(new URL('latest.json', resultsDir), `${JSON.stringify(summary, null, 2)}\n`)
const series: Series[] = [
  { title: 'RSS', unit: 'MB', points: samples.map(sample => [sample.t, sample.rssMb]), limit: (first?.rssMb ?? startRss) + maxGrowthMb },
  { title: 'Open handles', unit: 'fds', points: samples.map(sample => [sample.t, sample.fds]), limit: (first?.fds ?? 0) + maxFdGrowth },
  { title: 'Event-loop delay p99', unit: 'ms', points: samples.map(sample => [sample.t, sample.loopDelayMs]), limit: maxLoopDelayMs },
  { title: 'Caller p99 latency', unit: 'ms', points: samples.map(sample => [sample.t, sample.p99Ms]), limit: DEADLINE_MS + ALLOWED_OVERRUN_MS }
]
writeFileSync(new URL('latest.svg', resultsDir), soakChart(`soak ${summary.date}: ${durationS} s at ${ratePerSecond} req/s`, series))

const problems = [
  ...(unexpected.length > 0 ? [`${unexpected.length} unexpected answers, e.g. ${[...new Set(unexpected)].slice(0, 5).join(', ')}`] : []),
  ...(totals.sent !== totals.answered + totals.lost ? ['requests unaccounted for'] : []),
  ...(overruns.length > 0 ? [`${overruns.length} answers left more than ${ALLOWED_OVERRUN_MS} ms after their deadline (worst +${Math.max(...overruns).toFixed(0)} ms)`] : []),
  ...(served.length < totals.answered ? [`the service logged ${served.length} answers for ${totals.answered} received`] : []),
  ...(growthMb > maxGrowthMb ? [`RSS grew ${growthMb.toFixed(1)} MB after warm-up (bound ${maxGrowthMb} MB)`] : []),
  ...(fdGrowth > maxFdGrowth ? [`open handles grew by ${fdGrowth} after warm-up (bound ${maxFdGrowth})`] : []),
  ...(worstLoopDelayMs > maxLoopDelayMs ? [`event-loop delay p99 reached ${worstLoopDelayMs.toFixed(0)} ms (bound ${maxLoopDelayMs} ms)`] : [])
]
process.stdout.write(`soak total: ${totals.sent} sent, ${totals.answered} answered, ${totals.lost} lost, p50 ${summary.callerP50Ms.toFixed(1)} ms, p99 ${summary.callerP99Ms.toFixed(1)} ms, RSS ${startRss.toFixed(1)} → ${endRss.toFixed(1)} MB, statuses ${JSON.stringify(totals.statuses)}\n`)
process.stdout.write(`soak lateness (service's answer time minus its ${DEADLINE_MS} ms deadline, ${served.length} answers): p50 ${summary.latenessMs.p50.toFixed(0)} ms, p99 ${summary.latenessMs.p99.toFixed(0)} ms, max ${summary.latenessMs.max.toFixed(0)} ms, over +${ALLOWED_OVERRUN_MS} ms: ${overruns.length}\n`)
process.stdout.write(`soak report: dev/soak/results/latest.json and latest.svg\n`)
if (problems.length > 0) {
  process.stdout.write(`soak FAILED:\n${problems.map(problem => `  - ${problem}`).join('\n')}\n`)
  process.exit(1)
}
process.stdout.write('soak passed\n')
