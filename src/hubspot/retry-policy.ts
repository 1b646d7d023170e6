/**
 * When to retry a HubSpot call and how long to wait first. Pure: the caller supplies the attempt's
 * outcome, the time left and a random source.
 */
export type AttemptOutcome =
  | { kind: 'rate-limited'; policy: 'daily' | 'rolling'; waitHintMs: number | undefined }
  | { kind: 'server-error'; status: number; waitHintMs: number | undefined }
  | { kind: 'connection-error' }

export interface RetryPolicyOptions {
  maxRetries: number
  baseDelayMs?: number
  maxDelayMs?: number
  random?: () => number
}

export interface RetryDecision {
  retry: boolean
  /** How long to wait before the next attempt (when retrying), or what to tell the caller in Retry-After. */
  waitMs: number
}

const DEFAULT_BASE_DELAY_MS = 100
const DEFAULT_MAX_DELAY_MS = 2000

export function createRetryPolicy (options: RetryPolicyOptions) {
  const baseDelayMs = options.baseDelayMs ?? DEFAULT_BASE_DELAY_MS
  const maxDelayMs = options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS
  const random = options.random ?? Math.random

  /**
   * `retriesDone` counts retries already made; `remainingMs` is the deadline's time left and
   * `expectedAttemptMs` what one more attempt is likely to take (the last attempt's duration): a retry
   * that cannot finish before the deadline is never started.
   */
  return function decide (outcome: AttemptOutcome, retriesDone: number, remainingMs: number, expectedAttemptMs: number): RetryDecision {
    const hintMs = outcome.kind === 'connection-error' ? undefined : outcome.waitHintMs
    if (outcome.kind === 'rate-limited' && outcome.policy === 'daily') {
      return { retry: false, waitMs: hintMs ?? 0 }
    }
    // Full jitter (AWS architecture blog): spreads the retries of many callers evenly over the window.
    const backoffMs = random() * Math.min(maxDelayMs, baseDelayMs * 2 ** retriesDone)
    const waitMs = Math.max(hintMs ?? 0, backoffMs)
    const fits = waitMs + expectedAttemptMs < remainingMs
    return { retry: retriesDone < options.maxRetries && fits, waitMs }
  }
}

export type RetryPolicy = ReturnType<typeof createRetryPolicy>
