// A local OTLP/HTTP trace receiver for the tracing bench: takes POST /v1/traces (JSON), counts the
// requests, bytes and spans, and answers at once; GET /stats says how much arrived.
import { Buffer } from 'node:buffer'
import { createServer } from 'node:http'
import process from 'node:process'

const received = { requests: 0, bytes: 0, spans: 0 }
// Each span of the JSON encoding has one "spanId" member ("parentSpanId" does not match it).
const spanIdMember = /"spanId":/g

createServer((request, response) => {
  if (request.method === 'GET' && request.url === '/stats') {
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(received))
    return
  }
  if (request.method === 'GET' && request.url === '/') {
    response.writeHead(200).end()
    return
  }
  const chunks = []
  request.on('data', chunk => chunks.push(chunk))
  request.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8')
    received.requests++
    received.bytes += body.length
    received.spans += body.match(spanIdMember)?.length ?? 0
    response.writeHead(200, { 'content-type': 'application/json' }).end('{}')
  })
}).listen(Number(process.env.PORT), '127.0.0.1')
