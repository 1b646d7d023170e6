/** One check's outcome, as `npm run doctor` prints it (and as `--json` gives it). */

/** `warn` passes with something to look at; `skip` was not applicable or not asked for. */
export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip'

export interface CheckResult {
  /** Stable name: configuration, hubspot, session, jwks, user-directory, redis. */
  name: string
  status: CheckStatus
  /** One line: what was found. */
  summary: string
  /** What it means and what to do, a line each. */
  details: string[]
  /** Facts for scripts (statuses, counts, timings); never a token or a secret. */
  facts: Record<string, unknown>
}

export function checkResult (name: string, status: CheckStatus, summary: string, details: string[] = [], facts: Record<string, unknown> = {}): CheckResult {
  return { name, status, summary, details, facts }
}

/** Milliseconds since `startedAt` (performance.now()), rounded for display. */
export function elapsedMs (startedAt: number): number {
  return Math.round(performance.now() - startedAt)
}
