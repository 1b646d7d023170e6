import { randomBytes } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import { statusFaultBody } from './errors.js'
import type { Fault } from './faults.js'
import { JSON_CONTENT_TYPE } from './http-io.js'

export type AnsweringFault = Exclude<Fault, { kind: 'delay' }>

export interface FaultContext {
  rateHeaders: Record<string, string>
  /** Where a redirect without its own location points. */
  defaultLocation: string
  /** Keeps a deliberately unfinished response where reset()/close() can cut it. */
  hold(res: ServerResponse): void
}

const OVERSIZED_PADDING_BYTES = 100 * 1024
const MIN_TRICKLE_TICK_MS = 10

/** Answers with the fault instead of HubSpot's behaviour; returns the status sent, or null if none was. */
export function performFault (fault: AnsweringFault, res: ServerResponse, context: FaultContext): number | null {
  switch (fault.kind) {
    case 'status': {
      const payload =
        typeof fault.body === 'string' ? fault.body : JSON.stringify(fault.body === undefined ? statusFaultBody(fault.status) : fault.body)
      send(res, fault.status, payload, { ...context.rateHeaders, ...fault.headers })
      return fault.status
    }
    case 'reset':
      res.destroy()
      return null
    case 'reset-mid-body': {
      const payload = Buffer.from(tokenJson())
      writeHeaders(res, 200, payload.length, context.rateHeaders)
      res.write(payload.subarray(0, Math.floor(payload.length / 2)), () => res.destroy())
      return 200
    }
    case 'hang':
      context.hold(res)
      return null
    case 'malformed-json':
      send(res, 200, '{"token": "unterminated', context.rateHeaders)
      return 200
    case 'wrong-json':
      send(res, 200, JSON.stringify({ token: 42 }), context.rateHeaders)
      return 200
    case 'oversized':
      send(res, 200, JSON.stringify({ token: newToken(), padding: 'x'.repeat(OVERSIZED_PADDING_BYTES) }), context.rateHeaders)
      return 200
    case 'trickle':
      trickle(res, Buffer.from(tokenJson()), fault.bytesPerSecond ?? 1, context)
      return 200
    case 'redirect':
      send(res, 302, '', { ...context.rateHeaders, Location: fault.location ?? context.defaultLocation })
      return 302
  }
}

function trickle (res: ServerResponse, payload: Buffer, bytesPerSecond: number, context: FaultContext): void {
  const tickMs = Math.max(MIN_TRICKLE_TICK_MS, 1000 / bytesPerSecond)
  const bytesPerTick = Math.max(1, Math.round((bytesPerSecond * tickMs) / 1000))
  writeHeaders(res, 200, payload.length, context.rateHeaders)
  context.hold(res)
  let sent = 0
  const writeNext = (): void => {
    const chunk = payload.subarray(sent, sent + bytesPerTick)
    sent += chunk.length
    if (sent >= payload.length) {
      clearInterval(timer)
      res.end(chunk)
    } else {
      res.write(chunk)
    }
  }
  const timer = setInterval(writeNext, tickMs)
  writeNext()
  res.on('close', () => clearInterval(timer))
}

function send (res: ServerResponse, status: number, payload: string, headers: Record<string, string>): void {
  if (res.destroyed || res.headersSent) return
  writeHeaders(res, status, Buffer.byteLength(payload), headers)
  res.end(payload)
}

/** setHeader rather than writeHead's object so a fault's own headers replace ours whatever their case. */
function writeHeaders (res: ServerResponse, status: number, length: number, headers: Record<string, string>): void {
  res.setHeader('Content-Type', JSON_CONTENT_TYPE)
  res.setHeader('Content-Length', String(length))
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value)
  res.writeHead(status)
}

function newToken (): string {
  return randomBytes(32).toString('base64url')
}

function tokenJson (): string {
  return JSON.stringify({ token: newToken() })
}
