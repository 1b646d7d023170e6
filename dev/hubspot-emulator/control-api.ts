import type { IncomingMessage, ServerResponse } from 'node:http'
import { parseFaultPlan } from './faults.js'
import { pathnameOf, readBody, sendJson } from './http-io.js'
import { CONTROL_PREFIX } from './routes.js'
import type { EmulatorState } from './state.js'
import { InvalidInputError } from './validate.js'
import { sendWidgetScript, WIDGET_PATH } from './widget-asset.js'

const MAX_CONTROL_BYTES = 64 * 1024
const TOKEN_PATH = new RegExp(`^${CONTROL_PREFIX}/tokens/([^/]+)$`)

type ControlRoute = { method: 'GET' | 'POST'; handle: (body: unknown) => [status: number, body?: unknown] }

/** Test-facing endpoints: no auth, no rate limit, never recorded as calls. */
export async function handleControlRequest (state: EmulatorState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const pathname = pathnameOf(req.url)
  if (pathname === WIDGET_PATH) return sendWidgetScript(res, req.method)
  // The stand-in widget asks from the demo page's origin whether a token is genuine.
  if (TOKEN_PATH.test(pathname)) res.setHeader('Access-Control-Allow-Origin', '*')
  const route = findRoute(state, pathname)
  if (!route) {
    sendJson(res, 404, { error: 'not_found', message: `no control endpoint at ${pathname}` })
    return
  }
  const received = await readBody(req, MAX_CONTROL_BYTES)
  if (req.method !== route.method) {
    res.setHeader('Allow', route.method)
    sendJson(res, 405, { error: 'method_not_allowed', message: `use ${route.method} for ${pathname}` })
    return
  }
  if (received.tooLarge) {
    sendJson(res, 413, { error: 'payload_too_large', message: `control bodies are limited to ${MAX_CONTROL_BYTES} bytes` })
    return
  }

  let body: unknown
  if (route.method === 'POST' && received.text.trim() !== '') {
    try {
      body = JSON.parse(received.text) as unknown
    } catch {
      sendJson(res, 400, { error: 'bad_request', message: 'body is not valid JSON' })
      return
    }
  }
  try {
    const [status, answer] = route.handle(body)
    sendJson(res, status, answer)
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error
    sendJson(res, 400, { error: 'bad_request', message: error.message, problems: error.problems })
  }
}

function findRoute (state: EmulatorState, pathname: string): ControlRoute | undefined {
  switch (pathname) {
    case `${CONTROL_PREFIX}/health`:
      return { method: 'GET', handle: () => [200, { status: 'ok' }] }
    case `${CONTROL_PREFIX}/calls`:
      return { method: 'GET', handle: () => [200, state.snapshotCalls()] }
    case `${CONTROL_PREFIX}/stats`:
      return { method: 'GET', handle: () => [200, state.stats()] }
    case `${CONTROL_PREFIX}/faults`:
      return {
        method: 'POST',
        handle: (body) => {
          state.setFaults(parseFaultPlan(body))
          return [204]
        }
      }
    case `${CONTROL_PREFIX}/config`:
      return {
        method: 'POST',
        handle: (body) => {
          state.configure(body)
          return [200, state.options]
        }
      }
    case `${CONTROL_PREFIX}/reset`:
      return {
        method: 'POST',
        handle: () => {
          state.reset()
          return [204]
        }
      }
  }
  const token = TOKEN_PATH.exec(pathname)?.[1]
  if (token === undefined) return undefined
  return {
    method: 'GET',
    handle: () => {
      const issued = state.issued(safeDecode(token))
      return issued ? [200, issued] : [404, { error: 'not_found', message: 'no token issued with that value' }]
    }
  }
}

function safeDecode (segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    return segment
  }
}
