import type { IncomingMessage, ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { performFault } from './fault-responses.js'
import { describeFault } from './faults.js'
import { pathnameOf, readBody, recordedBody, sendJson } from './http-io.js'
import type { EmulatorState } from './state.js'
import { answerApiRequest, MAX_REQUEST_BYTES } from './token-endpoint.js'
import type { EmulatorCall } from './types.js'

/**
 * One request to the HubSpot side of the emulator. The scripted fault is taken on arrival,
 * before any check, so a test's sequence maps one-to-one onto the requests it sends.
 */
export async function handleApiRequest (
  state: EmulatorState,
  req: IncomingMessage,
  res: ServerResponse,
  signal: AbortSignal
): Promise<void> {
  const call: EmulatorCall = {
    at: Date.now(),
    method: req.method ?? 'GET',
    path: req.url ?? '/',
    authorization: req.headers.authorization,
    body: undefined,
    status: null
  }
  state.calls.push(call)
  const fault = state.faults.take()
  if (fault) call.fault = describeFault(fault)
  const latencyMs = state.options.latencyMs + state.faults.latencyMs + (fault?.kind === 'delay' ? fault.ms : 0)

  const body = await readBody(req, MAX_REQUEST_BYTES)
  call.body = recordedBody(body)
  if (latencyMs > 0) await sleep(latencyMs, undefined, { signal })
  if (res.destroyed) return

  const pathname = pathnameOf(req.url)
  const now = Date.now()
  if (fault && fault.kind !== 'delay') {
    const status = performFault(fault, res, {
      rateHeaders: state.limiter.headers(now),
      defaultLocation: req.url ?? '/',
      hold: (held) => {
        state.held.add(held)
        held.on('close', () => state.held.delete(held))
      }
    })
    finish(state, call, status)
    return
  }

  const answer = answerApiRequest(
    state,
    {
      method: call.method,
      pathname,
      authorization: req.headers.authorization,
      contentType: req.headers['content-type'],
      body
    },
    now
  )
  sendJson(res, answer.status, answer.body, { ...state.limiter.headers(now), ...answer.headers })
  if (answer.status === 200) call.token = (answer.body as { token: string }).token
  finish(state, call, answer.status)
}

function finish (state: EmulatorState, call: EmulatorCall, status: number | null): void {
  call.status = status
  if (status === 429) state.rejected429 += 1
}
