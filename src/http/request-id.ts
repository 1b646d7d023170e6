import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'

const saneRequestId = /^[A-Za-z0-9._-]{1,128}$/

/** Keeps a caller's (or the load balancer's) x-request-id when it is sane, so logs join up across hops. */
export function requestIdFrom (request: IncomingMessage): string {
  const incoming = request.headers['x-request-id']
  return typeof incoming === 'string' && saneRequestId.test(incoming) ? incoming : randomUUID()
}
