import { createHmac, hkdfSync } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { type DestinationStream, pino } from 'pino'
import { type AccessLine, createAccessLog } from './access-log.js'
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
  /** The one line per request (access-log.ts), on the same destination. */
  access: (line: AccessLine) => void
  /** Writes out what is batched now. */
  flush: () => void
  /** Writes out what is batched and stops the flush timer (the app's close calls it). */
  close: () => void
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

/** Lines are written to stdout in batches of about this many characters, or every FLUSH_INTERVAL_MS. */
const BATCH_CHARS = 16 * 1024
const FLUSH_INTERVAL_MS = 100

/**
 * Collects log lines and writes them to `out` in batches. A write(2) per line was the largest single
 * cost of a cache hit, and pino's own asynchronous buffering (sonic-boom with minLength) costs about as
 * much per line as the write it saves; appending to a string and writing it out every 16 KiB (about
 * eighty access lines) or 100 ms costs a fraction of either. Every line, whichever logger wrote it,
 * goes through the one buffer, so their order is kept. The batch goes out through pino's synchronous
 * destination, which retries a full pipe rather than dropping lines.
 */
class LineBatcher implements DestinationStream {
  /** Every batcher not yet closed: one exit listener writes them all out, however many apps a process builds. */
  static readonly #open = new Set<LineBatcher>()
  static {
    process.once('exit', () => { for (const batcher of LineBatcher.#open) batcher.flush() })
  }

  #pending = ''
  #closed = false
  readonly #out: DestinationStream
  readonly #timer: NodeJS.Timeout

  constructor (out: DestinationStream) {
    this.#out = out
    this.#timer = setInterval(() => this.flush(), FLUSH_INTERVAL_MS).unref()
    LineBatcher.#open.add(this)
  }

  write (line: string): void {
    if (this.#closed) {
      this.#out.write(line)
      return
    }
    this.#pending += line
    if (this.#pending.length >= BATCH_CHARS) this.flush()
  }

  /** Writes out every line collected so far, synchronously (pino's `logger.flush(done)` calls it too). */
  flush (done?: (error?: Error) => void): void {
    if (this.#pending !== '') {
      const batch = this.#pending
      this.#pending = ''
      this.#out.write(batch)
    }
    done?.()
  }

  /** Writes out the batch; lines logged after this (the last shutdown lines) go out one by one. */
  close (): void {
    this.#closed = true
    clearInterval(this.#timer)
    LineBatcher.#open.delete(this)
    this.flush()
  }
}

/**
 * Both loggers share one destination: by default stdout, batched (LineBatcher). What a batch holds is
 * written when it fills, every 100 ms, when the app closes, and when the process exits (after a signal
 * or an uncaught exception too); only a process killed outright (SIGKILL, the kernel's OOM killer, a
 * native crash) loses lines: those of its last 100 ms at most. A stream given by the caller (tests) is
 * written line by line.
 */
export function createLoggers (level: LogLevel, stream?: DestinationStream): ServiceLoggers {
  // At `silent` nothing is ever written: no batch, no timer.
  const batcher = stream === undefined && level !== 'silent' ? new LineBatcher(pino.destination({ dest: 1, sync: true })) : undefined
  const destination = stream ?? batcher ?? pino.destination({ dest: 1, sync: true })
  const service = pino({ level, redact: { paths: redactedPaths, censor: '[redacted]' }, serializers: { err: serializeError } }, destination)
  return {
    service,
    access: createAccessLog(service.isLevelEnabled('info'), destination),
    flush: () => batcher?.flush(),
    close: () => batcher?.close()
  }
}

/**
 * Emails are personal data: logs carry a short keyed hash instead, stable across replicas (the key is
 * derived from the HubSpot access token) so one person's requests can still be followed.
 */
export function createEmailHasher (secret: string): (email: string) => string {
  const key = Buffer.from(hkdfSync('sha256', secret, 'chat-token', 'log email hash', 32))
  // The first 12 bytes make exactly the first 16 base64url characters. Encoded alone, they are a string
  // of their own: a slice of the whole digest's text would keep all 43 characters alive, and this hash
  // is kept per cached session (twice: the per-caller key and the log's email hash).
  return (email: string) => createHmac('sha256', key).update(email).digest().toString('base64url', 0, 12)
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
