import type { Duplex } from 'node:stream'
import { type Dispatcher, Pool } from 'undici'
import type { Clock } from '../deadline.js'

/**
 * A request's latest moment to be written to the socket (clock ms). The outbound budget grants each
 * call a slot and a little tolerance; what happens between that decision and the bytes leaving (opening
 * a connection, a TLS handshake, a busy event loop) is spent from the same tolerance, and a call that
 * leaves later may land in HubSpot's next window and earn a 429 there. A cold replica in a login storm
 * is the usual case: calls decided on time wait while the pool opens its connections.
 */
export interface SendByOption {
  sendBy?: number | undefined
}

/** The request was not sent: it would have left after its `sendBy`. */
export class SendWindowMissedError extends Error {
  constructor () {
    super('The request would have left after its budget slot allowed; it was not sent')
    this.name = 'SendWindowMissedError'
  }
}

/**
 * A keep-alive Pool that checks `sendBy` at the last moment, when undici is about to write the request
 * on a connected socket, and fails the request there if it is late. Overriding `dispatch` (which
 * `request()` calls) costs one small object per request; an interceptor (`compose`) would also convert
 * every response's headers to the new handler API and back.
 */
export class SendGuardedPool extends Pool {
  readonly #clock: Clock

  constructor (origin: string, options: Pool.Options, clock: Clock) {
    super(origin, options)
    this.#clock = clock
  }

  override dispatch (options: Dispatcher.DispatchOptions & SendByOption, handler: Dispatcher.DispatchHandler): boolean {
    if (options.sendBy === undefined) return super.dispatch(options, handler)
    return super.dispatch(options, new SendByHandler(handler, options.sendBy, this.#clock))
  }
}

/**
 * Passes every event through to the handler `request()` made, except that a late start fails the
 * request before it is written. It speaks undici's original handler API because that handler does:
 * a wrapper in the newer API would make undici translate between the two on every event.
 */
class SendByHandler implements Dispatcher.DispatchHandler {
  readonly #inner: Dispatcher.DispatchHandler
  readonly #sendBy: number
  readonly #clock: Clock

  constructor (inner: Dispatcher.DispatchHandler, sendBy: number, clock: Clock) {
    if (typeof inner.onConnect !== 'function') throw new TypeError('SendGuardedPool expects the handler undici\'s request() builds')
    this.#inner = inner
    this.#sendBy = sendBy
    this.#clock = clock
  }

  onConnect (abort: (error?: Error) => void): void {
    // undici calls this right before writing the request, and fails just that request when it throws
    // (the socket stays open for the next one). abort() would also destroy the socket, and a pool that
    // has to reconnect for the next attempt makes that one late too.
    if (this.#clock.now() > this.#sendBy) throw new SendWindowMissedError()
    this.#inner.onConnect?.(abort)
  }

  onError (error: Error): void {
    this.#inner.onError?.(error)
  }

  onUpgrade (statusCode: number, headers: Buffer[] | string[] | null, socket: Duplex): void {
    this.#inner.onUpgrade?.(statusCode, headers, socket)
  }

  onResponseStarted (): void {
    this.#inner.onResponseStarted?.()
  }

  onHeaders (statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    return this.#inner.onHeaders?.(statusCode, headers, resume, statusText) ?? true
  }

  onData (chunk: Buffer): boolean {
    return this.#inner.onData?.(chunk) ?? true
  }

  onComplete (trailers: string[] | null): void {
    this.#inner.onComplete?.(trailers)
  }

  onBodySent (chunkSize: number, totalBytesSent: number): void {
    this.#inner.onBodySent?.(chunkSize, totalBytesSent)
  }
}
