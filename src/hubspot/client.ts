import { setTimeout as sleep } from 'node:timers/promises'
import type { Dispatcher } from 'undici'
import type { FastifyBaseLogger } from 'fastify'
import type { HubSpotConfig } from '../config/types.js'
import type { Identity } from '../auth/identity.js'
import { type Clock, type Deadline, systemClock } from '../deadline.js'
import { ServiceError } from '../errors.js'
import { AccountDay } from './account-day.js'
import { type AttemptOutcome, createRetryPolicy } from './retry-policy.js'
import { type SendByOption, SendGuardedPool, SendWindowMissedError } from './send-deadline.js'
import { BodyTooLargeError, readBodyText } from '../http/upstream-body.js'
import { parseJsonObject } from '../json-object.js'
import { errorSummary, rateLimitWaitMs, retryAfterMs, tokenFromBody } from './upstream-response.js'

/** A token HubSpot issued, with the moment it did (its 12 h life counts from then). */
export interface MintedToken {
  token: string
  issuedAt: number
}

export interface HubSpotClient {
  createVisitorToken: (identity: Identity, deadline: Deadline, log: FastifyBaseLogger) => Promise<MintedToken>
  /** A snapshot of the connection pool's counters: read-only, for leak checks and diagnostics. */
  stats: () => HubSpotPoolStats
  close: () => Promise<void>
}

/** undici's PoolStats, copied: the live object would keep changing under whoever reads it. */
export interface HubSpotPoolStats {
  /** Open sockets. */
  connected: number
  /** Open sockets with no request on them. */
  free: number
  pending: number
  queued: number
  running: number
  size: number
}

/** Most sockets the client opens to HubSpot at once. */
export const HUBSPOT_POOL_CONNECTIONS = 128

export interface HubSpotClientOptions {
  clock?: Clock
  random?: () => number
  /** Called once per attempt, for metrics. */
  onAttempt?: (outcome: AttemptReport) => void
  /** What every attempt passes through: the circuit breaker and the outbound budget. */
  gate?: AttemptGate
  /** The access token as it stands now (HUBSPOT_ACCESS_TOKEN_FILE rotates it); default: the configured one. */
  accessToken?: () => string
}

/**
 * Wraps each attempt, retries included: a retry is a call against HubSpot's limit like any other.
 */
export interface AttemptGate {
  /**
   * Before the attempt: may wait (for a budget slot) or refuse by throwing a ServiceError. A permit
   * says by when the attempt must be written to HubSpot.
   */
  before: (deadline: Deadline) => Promise<SendPermit | undefined>
  /** After the attempt, with what it met. */
  after: (report: AttemptReport) => void
  /** HubSpot answered a ten-second 429 and asked us to stay away this long (undefined: it did not say). */
  rateLimited: (waitHintMs: number | undefined) => void
  /** HubSpot answered a DAILY 429: nobody calls for `waitMs` (until the account's midnight, or its Retry-After). */
  dailyLimitReached: (waitMs: number) => void
}

/** Leave to send one attempt, within `sendBy`. */
export interface SendPermit {
  /** The latest moment (clock ms) the attempt may be written to HubSpot. */
  readonly sendBy: number
  /** The attempt was held back at `sendBy`: a new moment to send it, or a ServiceError. */
  renew: () => Promise<SendPermit>
}

/**
 * `timeout`: HubSpot did not answer although the call was sent with at least half of HUBSPOT_TIMEOUT_MS
 * left, a failure of HubSpot's. `deadline`: the call was sent with less and the request's own deadline
 * ran out first; that says little about HubSpot, so the circuit breaker does not count it.
 */
export interface AttemptReport {
  status: number | undefined
  outcome: 'ok' | 'rejected' | 'rate_limited' | 'server_error' | 'connection_error' | 'timeout' | 'deadline' | 'invalid_response'
  durationMs: number
}

export function tokenPath (baseUrl: string, apiVersion: string): string {
  const prefix = new URL(baseUrl).pathname.replace(/\/+$/, '')
  return apiVersion === 'v3'
    ? `${prefix}/conversations/v3/visitor-identification/tokens/create`
    : `${prefix}/visitor-identification/${apiVersion}/tokens/create`
}

const DEFAULT_RETRY_AFTER_MS = 1000

/**
 * Calls HubSpot's token-create endpoint on one keep-alive pool. Every outcome leaves as a ServiceError
 * with a contract code: callers never see an undici error.
 */
export function createHubSpotClient (config: HubSpotConfig, options: HubSpotClientOptions = {}): HubSpotClient {
  const clock = options.clock ?? systemClock
  const decide = createRetryPolicy({ maxRetries: config.maxRetries, random: options.random })
  const pool = new SendGuardedPool(new URL(config.baseUrl).origin, {
    connections: HUBSPOT_POOL_CONNECTIONS,
    keepAliveTimeout: 30_000,
    connect: { timeout: Math.min(config.timeoutMs, 10_000) }
  }, clock)
  const path = tokenPath(config.baseUrl, config.apiVersion)
  const accountDay = new AccountDay(config.accountTimeZone)
  const accessToken = options.accessToken ?? (() => config.accessToken)
  // Read for each attempt: after a rotation new calls carry the new token, calls in flight keep theirs.
  const headersNow = (): Record<string, string> => ({
    authorization: `Bearer ${accessToken()}`,
    'content-type': 'application/json',
    accept: 'application/json'
  })
  // The date versions' specs list hsCustomerAgentContext as required; an empty map is the safe value.
  const extraBody = config.apiVersion === 'v3' ? {} : { hsCustomerAgentContext: {} }

  /** Sends within the permit; a send held back for being late is renewed and tried again, unsent. */
  async function send (body: string, deadline: Deadline, permit: SendPermit | undefined): Promise<Dispatcher.ResponseData> {
    for (;;) {
      try {
        const request: Dispatcher.RequestOptions & SendByOption = { path, method: 'POST', headers: headersNow(), body, signal: deadline.signal, sendBy: permit?.sendBy }
        return await pool.request(request)
      } catch (error) {
        if (!(error instanceof SendWindowMissedError) || permit === undefined) throw error
        permit = await permit.renew()
      }
    }
  }

  async function attempt (body: string, deadline: Deadline, permit: SendPermit | undefined, log: FastifyBaseLogger): Promise<MintedToken | AttemptOutcome> {
    const startedAt = clock.now()
    // A call sent with less than half the request's budget left that times out ran out of its own time.
    const timedOut = deadline.remainingMs() >= config.timeoutMs / 2 ? 'timeout' : 'deadline'
    const report = (outcome: AttemptReport['outcome'], status?: number): void => {
      const attemptReport = { status, outcome, durationMs: clock.now() - startedAt }
      options.gate?.after(attemptReport)
      options.onAttempt?.(attemptReport)
    }
    let response
    try {
      response = await send(body, deadline, permit)
    } catch (error) {
      // The budget refused to renew a held-back send: nothing reached HubSpot, so there is nothing to report.
      if (error instanceof ServiceError) throw error
      if (deadline.signal.aborted) {
        report(timedOut)
        throw new ServiceError('upstream_timeout', 'HubSpot did not answer in time')
      }
      report('connection_error')
      log.warn({ err: { code: (error as { code?: string }).code, message: (error as Error).message } }, 'hubspot connection failed')
      return { kind: 'connection-error' }
    }

    const status = response.statusCode
    let text: string
    try {
      text = await readBodyText(response.body)
    } catch (error) {
      if (deadline.signal.aborted) {
        report(timedOut, status)
        throw new ServiceError('upstream_timeout', 'HubSpot did not finish answering in time')
      }
      if (error instanceof BodyTooLargeError) {
        report('invalid_response', status)
        throw new ServiceError('upstream_rejected', 'HubSpot sent an answer larger than allowed')
      }
      report('connection_error', status)
      return { kind: 'connection-error' }
    }
    const json = parseJsonObject(text)
    const summary = errorSummary(json)

    if (status === 200 || status === 201) {
      const token = tokenFromBody(json)
      if (token === undefined) {
        report('invalid_response', status)
        throw new ServiceError('upstream_rejected', 'HubSpot sent an answer without a usable token')
      }
      report('ok', status)
      // HubSpot issued it after we sent the request: counting from then, expiresAt is never too late.
      return { token, issuedAt: startedAt }
    }

    log.warn({ hubspot: { status, ...summary } }, 'hubspot answered with an error')
    if (status === 429) {
      report('rate_limited', status)
      if (summary.policyName === 'DAILY') {
        // The daily budget comes back at midnight in the account's time zone, for every replica at once.
        const waitMs = retryAfterMs(response.headers, clock.now()) ?? accountDay.msUntilReset(clock.now())
        options.gate?.dailyLimitReached(waitMs)
        return { kind: 'rate-limited', policy: 'daily', waitHintMs: waitMs }
      }
      const waitHintMs = rateLimitWaitMs(response.headers, clock.now())
      options.gate?.rateLimited(waitHintMs)
      return { kind: 'rate-limited', policy: 'rolling', waitHintMs }
    }
    if (status >= 500 && status <= 599) {
      report('server_error', status)
      return { kind: 'server-error', status, waitHintMs: retryAfterMs(response.headers, clock.now()) }
    }
    report('rejected', status)
    throw new ServiceError('upstream_rejected', rejectionDetail(status, summary.category))
  }

  async function createVisitorToken (identity: Identity, deadline: Deadline, log: FastifyBaseLogger): Promise<MintedToken> {
    const body = JSON.stringify({ ...identity, ...extraBody })
    for (let retriesDone = 0; ; retriesDone++) {
      const permit = await options.gate?.before(deadline)
      const attemptStartedAt = clock.now()
      const result = await attempt(body, deadline, permit, log)
      if (!('kind' in result)) return result
      const decision = decide(result, retriesDone, deadline.remainingMs(), clock.now() - attemptStartedAt)
      if (!decision.retry) {
        throw new ServiceError('upstream_unavailable', unavailableDetail(result), { retryAfterS: (decision.waitMs || DEFAULT_RETRY_AFTER_MS) / 1000 })
      }
      try {
        await sleep(decision.waitMs, undefined, { signal: deadline.signal })
      } catch {
        throw new ServiceError('upstream_timeout', 'HubSpot did not answer in time')
      }
    }
  }

  return {
    createVisitorToken,
    stats: () => {
      const { connected, free, pending, queued, running, size } = pool.stats
      return { connected, free, pending, queued, running, size }
    },
    close: () => pool.close()
  }
}

function rejectionDetail (status: number, category: string | undefined): string {
  const reason = status === 401
    ? 'refused the access token'
    : status === 403
      ? 'refused the access token\'s scopes or the account\'s subscription tier'
      : status === 400
        ? 'refused the request as invalid'
        : `answered with status ${status}`
  return `HubSpot ${reason}${category === undefined ? '' : ` (${category})`}`
}

function unavailableDetail (outcome: AttemptOutcome): string {
  switch (outcome.kind) {
    case 'rate-limited':
      return outcome.policy === 'daily' ? 'HubSpot\'s daily API limit is used up' : 'HubSpot\'s rate limit is reached'
    case 'server-error':
      return `HubSpot keeps failing (status ${outcome.status})`
    case 'connection-error':
      return 'HubSpot cannot be reached'
  }
}
