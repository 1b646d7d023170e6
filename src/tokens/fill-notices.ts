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

export interface NoticeWait {
  /** The holder's notice, or undefined when `ms` passed first (time to poll). */
  notice: Promise<FillNotice | undefined>
  cancel: () => void
}

/** Waiters by identity hash, woken by the subscriber connection. */
export class FillNotices {
  readonly #waiters = new Map<string, Set<(notice: FillNotice) => void>>()

  deliver (message: string): void {
    const parts = message.split(' ')
    const waiters = this.#waiters.get(parts[0] ?? '')
    const notice = parseNotice(parts)
    if (waiters === undefined || notice === undefined) return
    for (const wake of waiters) wake(notice)
  }

  /** Registers at once, so a notice published right after this call is not missed. */
  wait (hash: string, ms: number): NoticeWait {
    let settle: (notice: FillNotice | undefined) => void = () => {}
    const notice = new Promise<FillNotice | undefined>(resolve => { settle = resolve })
    const finish = (value: FillNotice | undefined): void => {
      clearTimeout(timer)
      const waiters = this.#waiters.get(hash)
      waiters?.delete(finish)
      if (waiters?.size === 0) this.#waiters.delete(hash)
      settle(value)
    }
    const timer = setTimeout(finish, ms, undefined)
    const waiters = this.#waiters.get(hash) ?? new Set()
    waiters.add(finish)
    this.#waiters.set(hash, waiters)
    return { notice, cancel: () => finish(undefined) }
  }
}
