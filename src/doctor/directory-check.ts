import { type Dispatcher, request } from 'undici'
import type { Config } from '../config/types.js'
import { checkResult, type CheckResult, elapsedMs } from './check.js'
import { connectionProblem, errorCode } from './network-errors.js'
import type { SessionOutcome } from './session-check.js'

const NAME = 'user-directory'
/** A subject no directory knows: the answer proves reachability and USER_LOOKUP_AUTH, not any user. */
const PROBE_SUBJECT = 'chat-token-doctor-probe'

/**
 * The user directory: the session check's real lookup when --jwt gave a subject, else one request for a
 * made-up subject, which a working directory answers with 404.
 */
export async function checkUserDirectory (config: Config, lookup: SessionOutcome['lookup'], dispatcher: Dispatcher): Promise<CheckResult> {
  const directory = config.userLookup
  if (directory === undefined) return checkResult(NAME, 'skip', 'no USER_LOOKUP_URL: identities come from the session token\'s claims only')
  if (lookup !== undefined) {
    return lookup.error === undefined
      ? checkResult(NAME, 'ok', `looked up subject "${lookup.subject}" (see the session check)`, [], { subject: lookup.subject })
      : checkResult(NAME, 'fail', `looking up subject "${lookup.subject}" failed: ${lookup.error}`, [], { subject: lookup.subject })
  }
  const url = new URL(directory.urlTemplate.replaceAll('{sub}', PROBE_SUBJECT))
  const headers: Record<string, string> = { accept: 'application/json' }
  if (directory.authorization !== undefined) headers.authorization = directory.authorization
  const startedAt = performance.now()
  let status: number
  try {
    const response = await request(url, { method: 'GET', dispatcher, headers, signal: AbortSignal.timeout(directory.timeoutMs) })
    status = response.statusCode
    await response.body.dump()
  } catch (error) {
    const code = errorCode(error)
    return checkResult(NAME, 'fail', `the user directory cannot be reached: ${connectionProblem(code, url, 'USER_LOOKUP_URL', directory.timeoutMs)}`, [], { code })
  }
  const facts = { status, ms: elapsedMs(startedAt) }
  const where = `${url.origin}`
  if (status === 404 || status === 200) {
    return checkResult(NAME, 'ok', `reached ${where}: it answered ${status} for a made-up subject`, ['Give --jwt with a token that carries no email to try a real lookup.'], facts)
  }
  if (status === 401 || status === 403) {
    return checkResult(NAME, 'fail', `reached ${where}, but it refused the request (${status})`, ['Check USER_LOOKUP_AUTH (the whole Authorization header value, e.g. "Bearer …").'], facts)
  }
  return checkResult(NAME, status >= 500 ? 'fail' : 'warn', `reached ${where}; it answered ${status} for a made-up subject (404 expected)`, [], facts)
}
