import { Agent, request } from 'undici'
import type { UserLookupConfig } from '../config/types.js'
import { ServiceError } from '../errors.js'
import { readBodyText } from '../http/upstream-body.js'
import { parseJsonObject } from '../json-object.js'
import { normaliseEmail } from './email.js'
import { cleanName, type Identity } from './identity.js'

/**
 * The user directory, for session JWTs that carry a subject but no email:
 * GET USER_LOOKUP_URL with {sub} filled in → `{ email, firstName?, lastName? }`.
 */
export interface UserDirectory {
  /** `budgetMs`: what is left of the request's deadline; the lookup never takes longer. */
  lookup: (subject: string, budgetMs?: number) => Promise<Identity>
  close: () => Promise<void>
}

const SUBJECT_MARKER = 'chat-token-subject-marker'
const MAX_SUBJECT_LENGTH = 256
/** A server may decode a path this many times (proxy, framework, router) before it routes it. */
const DECODINGS_CONSIDERED = 3
// eslint-disable-next-line no-control-regex
const controlCharacters = /[\u0000-\u001f\u007f]/

/**
 * Whether a subject could address something other than its own user record. encodeURIComponent leaves
 * "." and ".." as they are, and directories differ in what they decode before routing (%2e, %2F, a
 * backslash as a slash), so the subject is read the way the most lenient server would: percent-decoded
 * up to three times, "\" as "/". A subject that is empty, over 256 characters, holds a control
 * character, or then contains a path separator or is a dot segment is refused without a request.
 */
function unsafeSubject (subject: string): boolean {
  if (subject === '' || subject.length > MAX_SUBJECT_LENGTH || controlCharacters.test(subject)) return true
  let reading = subject
  for (let round = 0; round <= DECODINGS_CONSIDERED; round++) {
    if (/[/\\]/.test(reading) || reading === '.' || reading === '..') return true
    const decoded = decodeOnce(reading)
    if (decoded === undefined || controlCharacters.test(decoded)) return true
    if (decoded === reading) return false
    reading = decoded
  }
  // Still changing after every decoding a server might do: too doubtful to send.
  return true
}

function decodeOnce (text: string): string | undefined {
  try {
    return decodeURIComponent(text)
  } catch {
    return undefined
  }
}

/**
 * The part of the template before the subject, in the form URL parsing gives it: every lookup URL must
 * still start with it after its own parsing, so no subject can climb out of the directory's path.
 */
function templatePrefix (urlTemplate: string): string {
  const href = new URL(urlTemplate.replaceAll('{sub}', SUBJECT_MARKER)).href
  return href.slice(0, href.indexOf(SUBJECT_MARKER))
}

function lookupUrlFor (urlTemplate: string, prefix: string, subject: string): string | undefined {
  if (unsafeSubject(subject)) return undefined
  const url = new URL(urlTemplate.replaceAll('{sub}', encodeURIComponent(subject))).href
  return url.startsWith(prefix) ? url : undefined
}

/** `authorization`: the header value as it stands now (USER_LOOKUP_AUTH_FILE rotates it); default: the configured one. */
export function createUserDirectory (config: UserLookupConfig, authorization: () => string | undefined = () => config.authorization): UserDirectory {
  const agent = new Agent({ keepAliveTimeout: 30_000, connect: { timeout: config.timeoutMs } })
  const prefix = templatePrefix(config.urlTemplate)

  async function lookup (subject: string, budgetMs = config.timeoutMs): Promise<Identity> {
    const url = lookupUrlFor(config.urlTemplate, prefix, subject)
    if (url === undefined) throw new ServiceError('email_missing', 'The session token\'s subject cannot be looked up safely')
    // The request's own deadline binds before the directory's: that is a timeout, not a directory failure.
    const requestBound = budgetMs < config.timeoutMs
    if (budgetMs <= 0) throw new ServiceError('upstream_timeout', 'No time was left to look the user up')
    let status: number
    let text: string
    const sentAt = performance.now()
    const headers: Record<string, string> = { accept: 'application/json' }
    const authorizationNow = authorization()
    if (authorizationNow !== undefined) headers.authorization = authorizationNow
    try {
      const response = await request(url, { method: 'GET', headers, dispatcher: agent, signal: AbortSignal.timeout(Math.min(budgetMs, config.timeoutMs)) })
      status = response.statusCode
      text = await readBodyText(response.body)
    } catch {
      if (requestBound && performance.now() - sentAt >= budgetMs) {
        throw new ServiceError('upstream_timeout', 'The user directory did not answer before the request\'s deadline')
      }
      throw new ServiceError('user_lookup_failed', 'The user directory did not answer in time or could not be reached')
    }
    if (status === 404) throw new ServiceError('user_lookup_failed', 'The user directory does not know this user')
    if (status !== 200) throw new ServiceError('user_lookup_failed', `The user directory answered with status ${status}`)
    const body = parseJsonObject(text)
    const email = normaliseEmail(body?.email)
    if (email === undefined) throw new ServiceError('user_lookup_failed', 'The user directory returned no usable email')
    const identity: Identity = { email }
    const firstName = cleanName(body?.firstName)
    const lastName = cleanName(body?.lastName)
    if (firstName !== undefined) identity.firstName = firstName
    if (lastName !== undefined) identity.lastName = lastName
    return identity
  }

  return { lookup, close: () => agent.close() }
}
