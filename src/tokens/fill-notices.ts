import { type ErrorCode, ServiceError, errorCatalog } from '../errors.js'

/**
 * What a lock holder announces on the `filled` channel when it is done with an identity: `<hash> ok`
 * (the token is in the cache) or `<hash> fail <code> [retryAfterS]` (the mint failed, so waiters answer
 * the same error instead of taking turns at a HubSpot that just failed).
 */
export type FillNotice = { ok: true } | { ok: false; error: ServiceError }

export function formatNotice (hash: string, outcome: unknown): string {
  if (outcome === undefined) return `${hash} ok`
  const error = outcome instanceof ServiceError ? outcome : new ServiceError('internal_error', 'minting failed')
  return `${hash} fail ${error.code}${error.retryAfterS === undefined ? '' : ` ${error.retryAfterS}`}`
}

function parseNotice (parts: string[]): FillNotice | undefined {
  if (parts[1] === 'ok') return { ok: true }
  const code = parts[2]
  if (parts[1] !== 'fail' || code === undefined || !Object.hasOwn(errorCatalog, code)) return undefined
  const retryAfterS = parts[3] === undefined ? undefined : Number(parts[3])
  const detail = 'Another request minting the same token failed'
  return {
    ok: false,
    error: new ServiceError(code as ErrorCode, detail, Number.isFinite(retryAfterS) ? { retryAfterS } : {})
  }
}

/**
 * One waiter's ear on the channel for one identity, open for as long as it waits. A notice that
 * arrives while the waiter is busy between two waits (reading the cache, retrying the lock) is kept
 * for its next wait rather than lost.
 */
export interface NoticeListener {
  /** A notice heard since the last call, or the next one; undefined when `ms` pass first (time to poll). */
  next: (ms: number) => Promise<FillNotice | undefined>
  /** A failure heard and not yet taken by `next`. */
  heardFailure: () => ServiceError | undefined
  close: () => void
}

/** Listeners by identity hash, fed by the subscriber connection. */
export class FillNotices {
  readonly #listeners = new Map<string, Set<(notice: FillNotice) => void>>()

  deliver (message: string): void {
    const parts = message.split(' ')
    const listeners = this.#listeners.get(parts[0] ?? '')
    const notice = parseNotice(parts)
    if (listeners === undefined || notice === undefined) return
    for (const hear of listeners) hear(notice)
  }

  /** Listens from this call on, so a notice published right after it is not missed. */
  listen (hash: string): NoticeListener {
    let heard: FillNotice | undefined
    let wake: ((notice: FillNotice | undefined) => void) | undefined
    let timer: NodeJS.Timeout | undefined
    const answer = (notice: FillNotice | undefined): void => {
      clearTimeout(timer)
      const resolve = wake
      wake = undefined
      resolve?.(notice)
    }
    const hear = (notice: FillNotice): void => {
      if (wake !== undefined) return answer(notice)
      // A failure outranks an "ok" heard before it: the waiter must not mint where a holder just failed.
      if (heard === undefined || !notice.ok) heard = notice
    }
    const listeners = this.#listeners.get(hash) ?? new Set()
    listeners.add(hear)
    this.#listeners.set(hash, listeners)
    return {
      next: ms => {
        const kept = heard
        heard = undefined
        if (kept !== undefined) return Promise.resolve(kept)
        return new Promise(resolve => {
          wake = resolve
          timer = setTimeout(answer, ms, undefined)
        })
      },
      heardFailure: () => heard?.ok === false ? heard.error : undefined,
      close: () => {
        answer(undefined)
        listeners.delete(hear)
        if (listeners.size === 0 && this.#listeners.get(hash) === listeners) this.#listeners.delete(hash)
      }
    }
  }
}
