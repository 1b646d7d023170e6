import { type Dispatcher, request } from 'undici'
import { pino } from 'pino'
import type { Config } from '../config/types.js'
import { Deadline } from '../deadline.js'
import { isServiceError } from '../errors.js'
import { AccountDay } from '../hubspot/account-day.js'
import { createHubSpotClient, tokenPath } from '../hubspot/client.js'
import { errorSummary, rateLimitWaitMs, retryAfterMs } from '../hubspot/upstream-response.js'
import { readBodyText } from '../http/upstream-body.js'
import { parseJsonObject } from '../json-object.js'
import { checkResult, type CheckResult, elapsedMs } from './check.js'
import { connectionProblem, errorCode } from './network-errors.js'

const NAME = 'hubspot'
const REQUIRED_SCOPE = 'conversations.visitor_identification.tokens.create'

/** What HubSpot answered, as far as the doctor needs it. */
interface HubSpotAnswer {
  status: number
  category?: string
  policyName?: string
  correlationId?: string
  /** For a 429: how long until the limit lets calls through again. */
  waitMs?: number
}

/**
 * Without an email: a request HubSpot must refuse, with the real credentials on the real endpoint.
 * The answer proves DNS, TLS and the connection, and its status says whether the access token is
 * accepted (400) or not (401), without minting anything. With an email: one real token request through
 * the service's own client, whose answer must hold a token.
 */
export async function checkHubSpot (config: Config, email: string | undefined, dispatcher: Dispatcher): Promise<CheckResult> {
  return email === undefined ? probe(config, dispatcher) : mintOne(config, email)
}

async function probe (config: Config, dispatcher: Dispatcher): Promise<CheckResult> {
  const { accessToken, baseUrl, apiVersion, timeoutMs } = config.hubspot
  const url = new URL(tokenPath(baseUrl, apiVersion), baseUrl)
  const startedAt = performance.now()
  let status: number
  let body: Record<string, unknown> | undefined
  let headers: Record<string, string | string[] | undefined>
  try {
    const response = await request(url, {
      method: 'POST',
      dispatcher,
      headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json', accept: 'application/json' },
      // No email: HubSpot must refuse it as invalid, and mints nothing.
      body: '{}',
      signal: AbortSignal.timeout(timeoutMs)
    })
    status = response.statusCode
    headers = response.headers
    body = parseJsonObject(await readBodyText(response.body))
  } catch (error) {
    const code = errorCode(error)
    return checkResult(NAME, 'fail', `HubSpot at ${url.origin} cannot be reached: ${connectionProblem(code, url, 'HUBSPOT_BASE_URL', timeoutMs)}`, [], { mode: 'probe', code })
  }
  const ms = elapsedMs(startedAt)
  const reached = `reached ${url.origin} in ${ms} ms`
  const facts = { mode: 'probe', status, ms }
  if (status === 400) {
    return checkResult(NAME, 'ok', `${reached}; the access token is accepted`, [
      `A deliberately invalid request (no email) was refused as invalid (400${categoryOf(body)}), so nothing was minted.`,
      'The scope and the account\'s subscription tier show only in a real request: npm run doctor -- --email you@company.com'
    ], facts)
  }
  if (status === 200 || status === 201) {
    return checkResult(NAME, 'warn', `${reached}; HubSpot accepted a request without an email (${status}), which it should refuse`, [], facts)
  }
  const summary = errorSummary(body)
  const now = Date.now()
  const waitMs = status !== 429
    ? undefined
    : summary.policyName === 'DAILY'
      ? retryAfterMs(headers, now) ?? new AccountDay(config.hubspot.accountTimeZone).msUntilReset(now)
      : rateLimitWaitMs(headers, now)
  return explainRefusal(config, { status, ...summary, ...(waitMs === undefined ? {} : { waitMs }) }, reached, facts)
}

async function mintOne (config: Config, email: string): Promise<CheckResult> {
  const url = new URL(config.hubspot.baseUrl)
  // One request, no retries: the doctor reports what HubSpot answered, not what a retry hid.
  let status: number | undefined
  const client = createHubSpotClient({ ...config.hubspot, maxRetries: 0 }, { onAttempt: report => { status = report.status } })
  // The client says what HubSpot answered in its log lines (status, category, policy, correlationId).
  const logged: Array<Record<string, unknown>> = []
  const log = pino({ level: 'warn' }, { write: (line: string) => { logged.push(JSON.parse(line) as Record<string, unknown>) } })
  const deadline = new Deadline(config.hubspot.timeoutMs)
  const startedAt = performance.now()
  try {
    const minted = await client.createVisitorToken({ email }, deadline, log)
    const ms = elapsedMs(startedAt)
    // The client hands back only a non-empty token from a 200; HubSpot offers no way to check one further.
    return checkResult(NAME, 'ok', `HubSpot minted a genuine identification token for ${email} in ${ms} ms (${minted.token.length} characters, not shown)`, [
      'The access token, its scope and the account\'s tier all work. Only the chat widget can show the identified visitor: load it with this token to see the name in the inbox.'
    ], { mode: 'token', status: status ?? 200, ms, email, tokenLength: minted.token.length })
  } catch (error) {
    const answer = logged.find(line => typeof line.hubspot === 'object')?.hubspot as Omit<HubSpotAnswer, 'status'> | undefined
    if (status !== undefined && status !== 200 && status !== 201) {
      const retryAfterS = isServiceError(error) ? error.retryAfterS : undefined
      const waitMs = status === 429 && retryAfterS !== undefined ? retryAfterS * 1000 : undefined
      return explainRefusal(config, { ...answer, status, ...(waitMs === undefined ? {} : { waitMs }) }, `reached ${url.origin}`, { mode: 'token', status, email })
    }
    const failure = logged.find(line => typeof line.err === 'object')?.err as { code?: string } | undefined
    const code = failure?.code ?? (isServiceError(error) && error.code === 'upstream_timeout' ? 'TIMEOUT' : undefined)
    const why = status === undefined
      ? connectionProblem(code, url, 'HUBSPOT_BASE_URL', config.hubspot.timeoutMs)
      : isServiceError(error) ? error.message : String(error)
    return checkResult(NAME, 'fail', `no token from HubSpot at ${url.origin}: ${why}`, [], { mode: 'token', status, code, email })
  } finally {
    deadline.dispose()
    await client.close()
  }
}

function categoryOf (body: Record<string, unknown> | undefined): string {
  const category = errorSummary(body).category
  return category === undefined ? '' : ` ${category}`
}

/** Every refusal in words: what it means and what to change. */
function explainRefusal (config: Config, answer: HubSpotAnswer, reached: string, facts: Record<string, unknown>): CheckResult {
  const { status, category, policyName, correlationId, waitMs } = answer
  const label = `${status}${category === undefined ? '' : ` ${category}`}`
  const all = { ...facts, category, policyName, correlationId, waitMs }
  const support = correlationId === undefined ? [] : [`HubSpot's correlationId for this answer: ${correlationId} (quote it to HubSpot support).`]
  if (status === 401) {
    return checkResult(NAME, 'fail', `${reached}, but HubSpot refused the access token (${label})`, [
      'The access token (HUBSPOT_ACCESS_TOKEN or the file in HUBSPOT_ACCESS_TOKEN_FILE) is wrong or revoked: copy it again from the private app or service key in HubSpot.',
      ...support
    ], all)
  }
  if (status === 403) {
    const scopeLikely = category === 'MISSING_SCOPES'
    return checkResult(NAME, 'fail', `${reached}, but HubSpot refused the call (${label})`, [
      'A 403 here has one of two causes, and HubSpot\'s answer does not always tell them apart:',
      `  1. the private app or service key lacks the scope ${REQUIRED_SCOPE}: add it in the app's scopes${scopeLikely ? ' (HubSpot says MISSING_SCOPES, so most likely this one)' : ''};`,
      '  2. the account has no Professional or Enterprise subscription (Marketing, Sales, Service or Content Hub), which the Visitor Identification API requires.',
      ...support
    ], all)
  }
  if (status === 429) {
    const resetAt = waitMs === undefined ? undefined : new Date(Date.now() + waitMs)
    if (policyName === 'DAILY') {
      return checkResult(NAME, 'fail', `${reached}; HubSpot's DAILY limit is used up (429, policy DAILY)`, [
        `It resets at midnight in the account's time zone (HUBSPOT_ACCOUNT_TIME_ZONE=${config.hubspot.accountTimeZone})${resetAt === undefined ? '' : `: ${resetAt.toISOString()}, in ${duration(waitMs!)}`}.`,
        'Until then every token HubSpot is asked for is refused: only cached tokens are served.',
        ...support
      ], { ...all, resetsAt: resetAt?.toISOString() })
    }
    return checkResult(NAME, 'warn', `${reached}; HubSpot's ten-second limit is reached (429${policyName === undefined ? '' : `, policy ${policyName}`})`, [
      `It is a rolling window: calls go through again ${waitMs === undefined ? 'within ten seconds' : `in ${duration(waitMs)}`}. Other integrations of the same HubSpot account share it.`,
      ...support
    ], { ...all, resetsAt: resetAt?.toISOString() })
  }
  if (status === 404) {
    return checkResult(NAME, 'fail', `${reached}, but there is no token endpoint there (${label})`, [
      `Check HUBSPOT_BASE_URL (${config.hubspot.baseUrl}; an origin such as https://api.hubapi.com) and HUBSPOT_API_VERSION (${config.hubspot.apiVersion}).`,
      ...support
    ], all)
  }
  if (status >= 500) {
    return checkResult(NAME, 'fail', `${reached}, but HubSpot is failing (${label}): try again later`, support, all)
  }
  return checkResult(NAME, 'fail', `${reached}, but HubSpot answered ${label}`, support, all)
}

function duration (ms: number): string {
  const totalS = Math.max(1, Math.ceil(ms / 1000))
  if (totalS < 120) return `${totalS} s`
  const hours = Math.floor(totalS / 3600)
  const minutes = Math.floor((totalS % 3600) / 60)
  return hours === 0 ? `${minutes} min` : `${hours} h ${minutes} min`
}
