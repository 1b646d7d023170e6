import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAbortHookHandler, onRequestHookHandler, onResponseHookHandler } from 'fastify'
import type { Clock } from '../deadline.js'
import { ServiceError } from '../errors.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** When the request was read (clock ms): every upstream budget of the request counts from here. */
    receivedAt: number
    /** Its place among the requests the deadline backstop watches, while it is watched. */
    deadlineWatch: Watch | null
  }
}

/**
 * A watched request's link in the watch list. Emptied when the request leaves the list, so a link that
 * something still points at keeps no request alive.
 */
interface Watch {
  request: FastifyRequest | undefined
  reply: FastifyReply | undefined
  previous: Watch | undefined
  next: Watch | undefined
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
 * One timer serves every request: all deadlines are the same length, so the watch list (in the order
 * requests came) is also ordered by deadline, and a sweep stops at the first request that still has
 * time. The timer runs only while requests are being watched.
 *
 * The list is linked through the requests rather than kept in a Map: V8 keeps a Map's deleted values
 * reachable until the Map is next rebuilt, and a Map added to at one end and emptied at the other kept
 * every finished request alive through young-generation collections (see docs/design.md).
 *
 * `app` gets the request decoration the list links through; the hooks go on the routes to guard.
 */
export function createAnswerByDeadline (app: FastifyInstance, options: AnswerByDeadlineOptions): AnswerByDeadline {
  const { budgetMs, clock } = options
  const sweepEveryMs = options.sweepEveryMs ?? DEFAULT_SWEEP_EVERY_MS
  app.decorateRequest('deadlineWatch', null)
  let first: Watch | undefined
  let last: Watch | undefined
  let size = 0
  let timer: NodeJS.Timeout | undefined

  function watch (request: FastifyRequest, reply: FastifyReply): void {
    const entry: Watch = { request, reply, previous: last, next: undefined }
    if (last === undefined) first = entry
    else last.next = entry
    last = entry
    size++
    request.deadlineWatch = entry
  }

  function unwatch (request: FastifyRequest): void {
    const entry = request.deadlineWatch
    if (entry === null) return
    request.deadlineWatch = null
    if (entry.previous === undefined) first = entry.next
    else entry.previous.next = entry.next
    if (entry.next === undefined) last = entry.previous
    else entry.next.previous = entry.previous
    entry.request = entry.reply = entry.previous = entry.next = undefined
    size--
  }

  function sweep (): void {
    const now = clock.now()
    while (first?.request !== undefined && first.reply !== undefined) {
      const { request, reply } = first
      if (now < request.receivedAt + budgetMs) break
      unwatch(request)
      if (!reply.sent) {
        request.log.warn({ budgetMs }, 'answered at the deadline while a stage was still working')
        void reply.send(new ServiceError('upstream_timeout', 'The request did not finish before its deadline'))
      }
    }
    if (size === 0) stop()
  }

  function stop (): void {
    if (timer === undefined) return
    clearInterval(timer)
    timer = undefined
  }

  return {
    onRequest: (request, reply, done) => {
      request.receivedAt = clock.now()
      watch(request, reply)
      if (timer === undefined) {
        timer = setInterval(sweep, sweepEveryMs)
        timer.unref()
      }
      done()
    },
    onResponse: (request, _reply, done) => {
      unwatch(request)
      done()
    },
    onRequestAbort: (request, done) => {
      unwatch(request)
      done()
    },
    get watching () {
      return size
    },
    close: stop
  }
}
