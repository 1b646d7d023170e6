import { createHmac, hkdfSync } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { type DestinationStream, type Logger, pino } from 'pino'
import type { LogLevel } from './config/types.js'

/**
 * Paths that may hold a secret: session JWTs, cookies, the HubSpot access token and identification
 * tokens. Anything logged under these names is replaced, whatever the level.
 */
const redactedPaths = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'token',
  '*.token',
  'accessToken',
  '*.accessToken',
  'identificationToken',
  '*.identificationToken'
]

export interface ServiceLoggers {
  /** Fastify's logger and everything that logs through it: every call passes through redaction. */
  service: FastifyBaseLogger
  /**
   * The one line per request. Its fields are fixed and none can hold a secret (method, path without the
   * query, status, duration, error code, hashed email, request id), so it skips the redaction walk,
   * which was over half the line's cost on every request. Same stream, same format.
   */
  access: Logger
}

/** A logged `err`, as it appears in the line. */
export interface LoggedError {
  type?: string
  message?: string
  code?: string | number
  stack?: string
}

/**
 * `err` as type, message and code, plus the stack when there is one. pino's default serializer named
 * every plain object (`{ code, message }` from a failed connection) "Object" and gave it an empty stack.
 */
function serializeError (value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value
  const { name, message, code, stack } = value as Record<string, unknown>
  const logged: LoggedError = {}
  if (typeof name === 'string' && name !== '') logged.type = name
  if (typeof message === 'string') logged.message = message
  if (typeof code === 'string' || typeof code === 'number') logged.code = code
  if (value instanceof Error && typeof stack === 'string' && stack !== '') logged.stack = stack
  return logged
}

export function createLoggers (level: LogLevel, stream?: DestinationStream): ServiceLoggers {
  // pino's own default destination (stdout, synchronous), made here so both loggers share it.
  const destination = stream ?? pino.destination({ dest: 1, sync: true })
  return {
    service: pino({ level, redact: { paths: redactedPaths, censor: '[redacted]' }, serializers: { err: serializeError } }, destination),
    access: pino({ level }, destination)
  }
}

/**
 * Emails are personal data: logs carry a short keyed hash instead, stable across replicas (the key is
 * derived from the HubSpot access token) so one person's requests can still be followed.
 */
export function createEmailHasher (secret: string): (email: string) => string {
  const key = Buffer.from(hkdfSync('sha256', secret, 'chat-token', 'log email hash', 32))
  return (email: string) => createHmac('sha256', key).update(email).digest('base64url').slice(0, 16)
}

/**
 * createEmailHasher keyed by the newest of a key ring that may rotate (the token cache's: CACHE_KEY,
 * else the HubSpot token), so every replica hashes alike after a rotation.
 */
export function createRotatingEmailHasher (keys: () => readonly string[]): (email: string) => string {
  let material: string | undefined
  let hash: (email: string) => string = () => ''
  return email => {
    const newest = keys()[0]!
    if (newest !== material) {
      material = newest
      hash = createEmailHasher(newest)
    }
    return hash(email)
  }
}
