import { Agent, request } from 'undici'
import type { UserLookupConfig } from '../config.js'
import { ServiceError } from '../errors.js'
import { parseJsonObject, readBodyText } from '../hubspot/upstream-response.js'
import { normaliseEmail } from './email.js'
import { cleanName, type Identity } from './identity.js'

/**
 * The user directory, for session JWTs that carry a subject but no email:
 * GET USER_LOOKUP_URL with {sub} filled in → `{ email, firstName?, lastName? }`.
 */
export interface UserDirectory {
  lookup: (subject: string) => Promise<Identity>
  close: () => Promise<void>
}

export function createUserDirectory (config: UserLookupConfig): UserDirectory {
  const agent = new Agent({ keepAliveTimeout: 30_000, connect: { timeout: config.timeoutMs } })
  const headers: Record<string, string> = { accept: 'application/json' }
  if (config.authorization !== undefined) headers.authorization = config.authorization

  async function lookup (subject: string): Promise<Identity> {
    const url = config.urlTemplate.replaceAll('{sub}', encodeURIComponent(subject))
    let status: number
    let text: string
    try {
      const response = await request(url, { method: 'GET', headers, dispatcher: agent, signal: AbortSignal.timeout(config.timeoutMs) })
      status = response.statusCode
      text = await readBodyText(response.body)
    } catch {
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
