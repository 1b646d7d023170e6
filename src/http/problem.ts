import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { type ErrorCode, ServiceError, errorCatalog, isServiceError } from '../errors.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The contract code of the answer, when it was an error: logged on the request's one log line. */
    errorCode: ErrorCode | null
  }
}

/** With its charset, as Fastify writes it for JSON it serialises itself (a custom serializer gets no suffix). */
const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8'

export interface Problem {
  type: string
  title: string
  status: number
  detail: string
  code: ErrorCode
  requestId: string
}

/** The problem+json body (RFC 9457) every error answer carries, as a JSON schema: written down once (docs/api.md). */
const problemSchema = {
  type: 'object',
  required: ['type', 'title', 'status', 'detail', 'code', 'requestId'],
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    code: { type: 'string', enum: Object.keys(errorCatalog) },
    requestId: { type: 'string' }
  }
} as const

export function problemBody (error: ServiceError, requestId: string): Problem {
  return {
    type: `urn:chat-token:problem:${error.code}`,
    title: errorCatalog[error.code].title,
    status: error.status,
    detail: error.message,
    code: error.code,
    requestId
  }
}

const authenticateHeaders: Partial<Record<ErrorCode, string>> = {
  missing_token: 'Bearer',
  invalid_token: 'Bearer error="invalid_token"',
  token_expired: 'Bearer error="invalid_token", error_description="expired"'
}

function sendProblem (request: FastifyRequest, reply: FastifyReply, error: ServiceError): FastifyReply {
  request.errorCode = error.code
  const challenge = authenticateHeaders[error.code]
  if (challenge !== undefined) reply.header('www-authenticate', challenge)
  if (error.retryAfterS !== undefined) reply.header('retry-after', String(error.retryAfterS))
  return reply
    .code(error.status)
    .header('cache-control', 'no-store')
    .type(PROBLEM_CONTENT_TYPE)
    // Every route's problems, the not-found answer and errors thrown in hooks alike: serialised by the
    // one schema (compiled once per route), so no answer can carry a field the contract does not list.
    .serializer(reply.compileSerializationSchema(problemSchema))
    .send(problemBody(error, request.id))
}

/** Framework and library errors, translated to contract codes. Their own messages are never sent. */
function fromFrameworkError (error: FastifyError): ServiceError {
  if (error.validation !== undefined) return new ServiceError('bad_request', 'The request is not valid')
  switch (error.statusCode) {
    case 413: return new ServiceError('payload_too_large', 'The request body is too large')
    case 415: return new ServiceError('unsupported_media_type', 'The request body\'s content type is not supported')
    case 429: return new ServiceError('rate_limited', 'Too many requests, slow down')
    case 431: return new ServiceError('headers_too_large', 'The request headers are too large')
  }
  if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
    return new ServiceError('bad_request', 'The request is not valid')
  }
  return new ServiceError('internal_error', 'Something went wrong; the request id identifies it in the logs')
}

export function registerProblemHandlers (app: FastifyInstance): void {
  app.decorateRequest('errorCode', null)

  app.setErrorHandler(function handleError (error: FastifyError, request, reply) {
    const problem = isServiceError(error) ? error : fromFrameworkError(error)
    if (problem.status >= 500 && !isServiceError(error)) {
      request.log.error({ err: error }, 'unhandled error')
    }
    return sendProblem(request, reply, problem)
  })

  app.setNotFoundHandler(function handleNotFound (request, reply) {
    return sendProblem(request, reply, new ServiceError('not_found', 'No such route'))
  })
}
