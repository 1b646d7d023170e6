import { createHmac, hkdfSync } from 'node:crypto'
import type { FastifyServerOptions } from 'fastify'
import type { DestinationStream } from 'pino'
import type { LogLevel } from './config.js'

/**
 * Paths that may hold a secret: session JWTs, cookies, the HubSpot access token and identification
 * tokens. Anything logged under these names is replaced, whatever the level.
 */
export const redactedPaths = [
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

export function loggerOptions (level: LogLevel, stream?: DestinationStream): FastifyServerOptions['logger'] {
  return {
    level,
    redact: { paths: redactedPaths, censor: '[redacted]' },
    ...(stream === undefined ? {} : { stream })
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
