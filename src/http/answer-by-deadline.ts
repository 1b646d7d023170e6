import type { FastifyReply, FastifyRequest, onRequestAbortHookHandler, onRequestHookHandler, onResponseHookHandler } from 'fastify'
import type { Clock } from '../deadline.js'
import { ServiceError } from '../errors.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** When the request was read (clock ms): every upstream budget of the request counts from here. */
    receivedAt: number
  }
}

export interface AnswerByDeadlineOptions {
  /** HUBSPOT_TIMEOUT_MS: the longest any answer of these routes may take. */
  budgetMs: number
  clock: Clock
  /** How often requests past their deadline are looked for; the most an answer can be late by this guard. */
  sweepEveryMs?: number
}

export interface AnswerByDeadline {
  onRequest: onRequestHookHandler
  onResponse: onResponseHookHandler
  onRequestAbort: onRequestAbortHookHandler
  /** Requests being watched (for tests and diagnostics). */
  readonly watching: number
  close: () => void
}

const DEFAULT_SWEEP_EVERY_MS = 20

/**
 * The promise that every answer leaves by its deadline, kept whatever a stage does: a JWKS refetch, a
 * stalled Redis under the per-caller limit, a slow user directory or a mint's queue. Each stage already
 * bounds its own waits by the request's remaining budget; this is the backstop that answers 504
 * `upstream_timeout` for a request still unanswered at `receivedAt + budgetMs`.
 *
 * One timer serves every request: all deadlines are the same length, so the watch list (insertion
 * ordered) is also ordered by deadline, and a sweep stops at the first request that still has time.
 * The timer runs only while requests are being watched.
 */
export function createAnswerByDeadline (options: AnswerByDeadlineOptions): AnswerByDeadline {
  const { budgetMs, clock } = options
  const sweepEveryMs = options.sweepEveryMs ?? DEFAULT_SWEEP_EVERY_MS
  const watched = new Map<FastifyRequest, FastifyReply>()
  let timer: NodeJS.Timeout | undefined

  function sweep (): void {
    const now = clock.now()
    for (const [request, reply] of watched) {
      if (now < request.receivedAt + budgetMs) break
      watched.delete(request)
      if (!reply.sent) {
        request.log.warn({ budgetMs }, 'answered at the deadline while a stage was still working')
        void reply.send(new ServiceError('upstream_timeout', 'The request did not finish before its deadline'))
      }
    }
    if (watched.size === 0) stop()
  }

  function stop (): void {
    if (timer === undefined) return
    clearInterval(timer)
    timer = undefined
  }

  return {
    onRequest: (request, reply, done) => {
      request.receivedAt = clock.now()
      watched.set(request, reply)
      if (timer === undefined) {
        timer = setInterval(sweep, sweepEveryMs)
        timer.unref()
      }
      done()
    },
    onResponse: (request, _reply, done) => {
      watched.delete(request)
      done()
    },
    onRequestAbort: (request, done) => {
      watched.delete(request)
      done()
    },
    get watching () {
      return watched.size
    },
    close: stop
  }
}
