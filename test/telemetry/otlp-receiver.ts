import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gunzipSync } from 'node:zlib'

/**
 * A real OTLP/HTTP trace receiver on 127.0.0.1: POST /v1/traces with the JSON encoding (what
 * @opentelemetry/exporter-trace-otlp-http sends), decoded into flat spans. Also kept raw, so a test
 * can search everything that was exported, not only the fields it knows.
 */

type Teardown = { teardown: (fn: () => unknown) => void }

export type AttributeValue = string | number | boolean | AttributeValue[] | undefined

export interface ReceivedSpan {
  traceId: string
  spanId: string
  parentSpanId: string
  name: string
  kind: number
  startNs: bigint
  endNs: bigint
  attributes: Record<string, AttributeValue>
  status: { code?: number; message?: string }
  events: Array<{ name: string; attributes: Record<string, AttributeValue> }>
  scope: string
  resource: Record<string, AttributeValue>
}

export interface OtlpReceiver {
  url: string
  spans: () => ReceivedSpan[]
  /** Every request body received, decoded to text. */
  rawBodies: () => string[]
  /** Requests of any kind that reached the receiver. */
  requests: () => number
}

interface OtlpKeyValue { key: string; value?: OtlpAnyValue }
interface OtlpAnyValue {
  stringValue?: string
  boolValue?: boolean
  intValue?: string | number
  doubleValue?: number
  arrayValue?: { values?: OtlpAnyValue[] }
  kvlistValue?: { values?: OtlpKeyValue[] }
  bytesValue?: string
}
interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  startTimeUnixNano: string | number
  endTimeUnixNano: string | number
  attributes?: OtlpKeyValue[]
  status?: { code?: number; message?: string }
  events?: Array<{ name: string; attributes?: OtlpKeyValue[] }>
}
interface OtlpTraces {
  resourceSpans?: Array<{
    resource?: { attributes?: OtlpKeyValue[] }
    scopeSpans?: Array<{ scope?: { name?: string }; spans?: OtlpSpan[] }>
  }>
}

function valueOf (value: OtlpAnyValue | undefined): AttributeValue {
  if (value === undefined) return undefined
  if (value.stringValue !== undefined) return value.stringValue
  if (value.boolValue !== undefined) return value.boolValue
  if (value.intValue !== undefined) return Number(value.intValue)
  if (value.doubleValue !== undefined) return value.doubleValue
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(valueOf)
  if (value.bytesValue !== undefined) return value.bytesValue
  return JSON.stringify(value)
}

function attributesOf (list: OtlpKeyValue[] | undefined): Record<string, AttributeValue> {
  return Object.fromEntries((list ?? []).map(entry => [entry.key, valueOf(entry.value)]))
}

async function bodyOf (request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  const bytes = Buffer.concat(chunks)
  return (request.headers['content-encoding'] === 'gzip' ? gunzipSync(bytes) : bytes).toString('utf8')
}

export async function startOtlpReceiver (t: Teardown): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = []
  const bodies: string[] = []
  let requests = 0
  const server = createServer((request, response) => {
    requests++
    if (request.method !== 'POST' || request.url !== '/v1/traces') {
      response.writeHead(404).end()
      return
    }
    bodyOf(request).then(text => {
      bodies.push(text)
      const traces = JSON.parse(text) as OtlpTraces
      for (const resourceSpans of traces.resourceSpans ?? []) {
        const resource = attributesOf(resourceSpans.resource?.attributes)
        for (const scopeSpans of resourceSpans.scopeSpans ?? []) {
          for (const span of scopeSpans.spans ?? []) {
            spans.push({
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId ?? '',
              name: span.name,
              kind: span.kind,
              startNs: BigInt(span.startTimeUnixNano),
              endNs: BigInt(span.endTimeUnixNano),
              attributes: attributesOf(span.attributes),
              status: span.status ?? {},
              events: (span.events ?? []).map(event => ({ name: event.name, attributes: attributesOf(event.attributes) })),
              scope: scopeSpans.scope?.name ?? '',
              resource
            })
          }
        }
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    }).catch(() => { response.writeHead(400).end() })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => { server.closeAllConnections(); server.close(resolve) }))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans: () => [...spans],
    rawBodies: () => [...bodies],
    requests: () => requests
  }
}
