import { setTimeout as sleep } from 'node:timers/promises'
import { runLoad } from '../load.js'
import { freePort, startProcess, waitForHealthy } from '../processes.js'
import { sessionKeys, signMany } from '../sessions.js'
import type { Row } from '../stats.js'
import { LOAD_CPU, type Running, startEmulator, startService } from '../stack.js'
import { type Measured, measure, row, warmHits } from './throughput.js'

/**
 * The hit scenario three times over: tracing off, on with every request sampled, and on at 1 %
 * (`--only hit-tracing`; not part of a full run). The three replicas run side by side and take turns,
 * one measured run each per iteration, so drift on a busy machine touches all three alike. Traced
 * replicas export (OTLP/HTTP JSON) to a local sink each, beside the load generator.
 */

interface Sink { url: string; stats: () => Promise<{ requests: number; bytes: number; spans: number }>; stop: () => Promise<void> }

async function startSink (name: string): Promise<Sink> {
  const port = await freePort()
  const since = performance.now()
  const process = startProcess(name, globalThis.process.execPath, ['dev/bench/otlp-sink.mjs'], { PORT: String(port) }, LOAD_CPU)
  const url = `http://127.0.0.1:${port}`
  await waitForHealthy(`${url}/`, since)
  return {
    url,
    stats: async () => await (await fetch(`${url}/stats`)).json() as { requests: number; bytes: number; spans: number },
    stop: () => process.stop()
  }
}

interface Variant { label: string; env: (sink: Sink | undefined) => Record<string, string>; traced: boolean }

const variants: Variant[] = [
  { label: 'tracing off', traced: false, env: () => ({}) },
  { label: 'tracing on, every request sampled', traced: true, env: sink => ({ OTEL_EXPORTER_OTLP_ENDPOINT: sink!.url, OTEL_TRACES_SAMPLER: 'always_on' }) },
  { label: 'tracing on, 1 % sampled', traced: true, env: sink => ({ OTEL_EXPORTER_OTLP_ENDPOINT: sink!.url, OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01' }) }
]

export async function hitTracing (settings: { iterations: number; durationS: number; connections: number; hitIdentities: number }, baselineRps: number): Promise<Row[]> {
  const emulator = await startEmulator()
  const keys = sessionKeys('HS256')
  const tokens = signMany(keys, settings.hitIdentities)
  const started: Array<{ variant: Variant; sink: Sink | undefined; service: Running; url: string; rotate: Array<Record<string, string>>; runs: Measured[]; spans: number }> = []
  try {
    for (const [index, variant] of variants.entries()) {
      const sink = variant.traced ? await startSink(`otlp-sink-${index}`) : undefined
      const service = await startService({ ...keys.env, HUBSPOT_BASE_URL: emulator.url, HUBSPOT_RATE_LIMIT: '1000000/1s', ...variant.env(sink) }, `service-tracing-${index}`)
      const url = `${service.url}/chat-token`
      started.push({ variant, sink, service, url, rotate: [], runs: [], spans: 0 })
    }
    for (const replica of started) replica.rotate = await warmHits(replica.url, tokens, settings.connections)
    for (let i = 0; i < settings.iterations; i++) {
      for (const replica of started) {
        const before = (await replica.sink?.stats())?.spans ?? 0
        replica.runs.push(await measure(replica.service, () => runLoad({ url: replica.url, connections: settings.connections, durationS: settings.durationS, rotate: replica.rotate })))
        // A batch is sent every 512 spans or 5 s: wait for the tail of this run before the next one starts.
        if (replica.sink !== undefined) {
          await sleep(5500)
          replica.spans += ((await replica.sink.stats()).spans - before)
        }
      }
    }
    return started.map(replica => {
      const requests = replica.runs.reduce((sum, run) => sum + run.load.requests, 0)
      const exported = replica.variant.traced ? `; ${replica.spans} spans exported (${(replica.spans / Math.max(1, requests)).toFixed(2)} per request)` : ''
      return row(`hit HS256, ${replica.variant.label}`, replica.runs, `${settings.connections} connections, replicas taking turns${exported}`, baselineRps)
    })
  } finally {
    for (const replica of started) {
      await replica.service.process.stop()
      await replica.sink?.stop()
    }
    await emulator.process.stop()
  }
}
