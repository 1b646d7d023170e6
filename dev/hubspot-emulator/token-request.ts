import { validationError, type HubSpotErrorBody, type HubSpotErrorDetail } from './errors.js'
import { isRecord } from './validate.js'

export interface CreateTokenRequest {
  email: string
  firstName?: string
  lastName?: string
  hsCustomerAgentContext?: Record<string, string>
}

export type CreateTokenCheck =
  | { ok: true; request: CreateTokenRequest }
  | { ok: false; error: HubSpotErrorBody }

const MAX_EMAIL_LENGTH = 254

/** HubSpot's spec sets no email format, so this only rejects what no mailbox could be. */
export function isPlausibleEmail (email: string): boolean {
  if (email.length > MAX_EMAIL_LENGTH || /\s/.test(email)) return false
  const parts = email.split('@')
  return parts.length === 2 && parts[0] !== '' && parts[1] !== ''
}

export function checkCreateTokenBody (text: string, dateVersioned: boolean): CreateTokenCheck {
  let body: unknown
  try {
    body = JSON.parse(text) as unknown
  } catch (error) {
    const detail = error instanceof Error ? error.message : 'unparseable'
    return fail(`Invalid input JSON: ${detail}`, [{ message: 'The request body is not valid JSON.', code: 'INVALID_JSON' }])
  }
  if (!isRecord(body)) {
    return fail('Invalid input: the request body must be a JSON object.', [
      { message: 'Expected a JSON object.', code: 'INVALID_TYPE' }
    ])
  }

  const { email, firstName, lastName, hsCustomerAgentContext } = body
  if (email === undefined || email === null || email === '') {
    return fail('Invalid input: email is required.', [{ message: 'email is required.', in: 'email', code: 'REQUIRED_FIELD' }])
  }
  if (typeof email !== 'string' || !isPlausibleEmail(email)) {
    return fail(`Invalid input: ${JSON.stringify(email)} is not a valid email address.`, [
      { message: 'email must be a valid email address.', in: 'email', code: 'INVALID_EMAIL' }
    ])
  }

  const request: CreateTokenRequest = { email }
  const typeErrors: HubSpotErrorDetail[] = []
  for (const [field, value] of [['firstName', firstName], ['lastName', lastName]] as const) {
    if (typeof value === 'string') request[field] = value
    else if (value !== undefined && value !== null) {
      typeErrors.push({ message: `${field} must be a string.`, in: field, code: 'INVALID_TYPE' })
    }
  }
  // The legacy v3 schema has no such field, so there it is ignored like any unknown property.
  if (dateVersioned && hsCustomerAgentContext !== undefined) {
    if (isStringMap(hsCustomerAgentContext)) request.hsCustomerAgentContext = hsCustomerAgentContext
    else {
      typeErrors.push({
        message: 'hsCustomerAgentContext must be an object of string values.',
        in: 'hsCustomerAgentContext',
        code: 'INVALID_TYPE'
      })
    }
  }
  if (typeErrors.length > 0) return fail('Invalid input: some fields have the wrong type.', typeErrors)
  return { ok: true, request }
}

function isStringMap (value: unknown): value is Record<string, string> {
  return isRecord(value) && Object.values(value).every((item) => typeof item === 'string')
}

function fail (message: string, errors: HubSpotErrorDetail[]): CreateTokenCheck {
  return { ok: false, error: validationError(message, errors) }
}
