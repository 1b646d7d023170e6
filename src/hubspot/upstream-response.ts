/** Interpreting what HubSpot sends back, kept apart from the retry loop. */

const MAX_TOKEN_LENGTH = 8192

/** The token from a 200 answer, or undefined when the answer is not `{ token: <non-empty string> }`. */
export function tokenFromBody (body: Record<string, unknown> | undefined): string | undefined {
  const token = body?.token
  return typeof token === 'string' && token.length > 0 && token.length <= MAX_TOKEN_LENGTH ? token : undefined
}

/** HubSpot's error fields worth logging; never its free-text message, which may echo the email. */
export function errorSummary (body: Record<string, unknown> | undefined): { correlationId?: string; category?: string; policyName?: string } {
  const pick = (key: string): string | undefined => {
    const value = body?.[key]
    return typeof value === 'string' && value.length <= 200 ? value : undefined
  }
  const summary: { correlationId?: string; category?: string; policyName?: string } = {}
  const correlationId = pick('correlationId')
  const category = pick('category') ?? pick('errorType')
  const policyName = pick('policyName')
  if (correlationId !== undefined) summary.correlationId = correlationId
  if (category !== undefined) summary.category = category
  if (policyName !== undefined) summary.policyName = policyName
  return summary
}

type Headers = Record<string, string | string[] | undefined>

function header (headers: Headers, name: string): string | undefined {
  const value = headers[name]
  return Array.isArray(value) ? value[0] : value
}

/** Retry-After in milliseconds (delta-seconds or an HTTP date), undefined when absent or unreadable. */
export function retryAfterMs (headers: Headers, now: number): number | undefined {
  const value = header(headers, 'retry-after')?.trim()
  if (value === undefined || value === '') return undefined
  if (/^\d+$/.test(value)) return Number(value) * 1000
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

/** How long a ten-second-policy 429 asks us to stay away: Retry-After, else the window's length. */
export function rateLimitWaitMs (headers: Headers, now: number): number | undefined {
  const retryAfter = retryAfterMs(headers, now)
  if (retryAfter !== undefined) return retryAfter
  const interval = Number(header(headers, 'x-hubspot-ratelimit-interval-milliseconds'))
  return Number.isFinite(interval) && interval > 0 ? interval : undefined
}
