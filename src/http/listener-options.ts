import { randomUUID } from 'node:crypto'
import { STATUS_CODES, type ServerOptions } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import type { Config } from '../config/types.js'
import { type ErrorCode, ServiceError } from '../errors.js'
import { problemBody } from './problem.js'

/** Session JWTs and cookies fit easily; Node's default, stated so nobody lowers it by accident. */
const MAX_HEADER_BYTES = 16 * 1024

/**
 * Socket-level behaviour of the public listener. Slow clients are cut off by the headers and request
 * timeouts (checked every second, not Node's default 30 s); idle keep-alive sockets live longer than
 * the load balancer's idle timeout, so the balancer, not the service, closes them.
 */
export interface ListenerOptions {
  keepAliveTimeout: number
  requestTimeout: number
  http: ServerOptions
  return503OnClosing: boolean
  clientErrorHandler: NonNullable<FastifyServerOptions['clientErrorHandler']>
}

export function listenerOptions (http: Config['http']): ListenerOptions {
  return {
    keepAliveTimeout: http.keepAliveTimeoutMs,
    requestTimeout: http.requestTimeoutMs,
    http: { headersTimeout: http.headersTimeoutMs, maxHeaderSize: MAX_HEADER_BYTES, connectionsCheckingInterval: 1000 },
    // Fastify's own answer while closing is a plain-JSON 503. Requests that still arrive on an open
    // connection are served instead (with Connection: close), which is what a drain wants.
    return503OnClosing: false,
    clientErrorHandler
  }
}

function clientErrorCode (error: NodeJS.ErrnoException): ErrorCode {
  if (error.code === 'HPE_HEADER_OVERFLOW') return 'headers_too_large'
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'request_timeout'
  return 'bad_request'
}

/** Errors Node raises before a request exists (oversized headers, timeouts, bad HTTP), as problem+json. */
function clientErrorHandler (this: FastifyInstance, error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const problem = new ServiceError(clientErrorCode(error), 'The request could not be read')
  this.log.debug({ err: { code: error.code, message: error.message } }, 'client error')
  if (socket.writable) {
    const body = JSON.stringify(problemBody(problem, randomUUID()))
    socket.write(`HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status] ?? ''}\r\n` +
      'content-type: application/problem+json\r\ncache-control: no-store\r\nconnection: close\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
  }
  socket.destroy()
}
