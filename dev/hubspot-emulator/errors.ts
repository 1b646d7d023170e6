import { randomUUID } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import { REQUIRED_SCOPE } from './options.js'
import type { RatePolicy } from './rate-limiter.js'

/** HubSpot's standard error body; wording is illustrative, the shape follows HubSpot's error-response docs. */
export interface HubSpotErrorBody {
  status: 'error'
  message: string
  correlationId: string
  category: string
  errors?: HubSpotErrorDetail[]
  links?: Record<string, string>
}

export interface HubSpotErrorDetail {
  message: string
  in?: string
  code?: string
  context?: Record<string, string[]>
}

/** 429s use a different shape from every other HubSpot error. */
export interface RateLimitErrorBody {
  status: 'error'
  message: string
  errorType: 'RATE_LIMIT'
  correlationId: string
  policyName: RatePolicy
}

function errorBody (category: string, message: string, extra: Partial<HubSpotErrorBody> = {}): HubSpotErrorBody {
  return { status: 'error', message, correlationId: randomUUID(), category, ...extra }
}

export function authenticationError (): HubSpotErrorBody {
  return errorBody(
    'INVALID_AUTHENTICATION',
    'Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more ' +
      'details at https://developers.hubspot.com/docs/methods/auth/oauth-overview'
  )
}

export function missingScopesError (): HubSpotErrorBody {
  return errorBody(
    'MISSING_SCOPES',
    "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: " +
      'https://developers.hubspot.com/scopes.',
    {
      errors: [{ message: 'One or more of the following scopes are required.', context: { requiredScopes: [REQUIRED_SCOPE] } }],
      links: { scopes: 'https://developers.hubspot.com/scopes' }
    }
  )
}

export function tierError (): HubSpotErrorBody {
  return errorBody(
    'FORBIDDEN',
    "This portal's subscription does not include the Visitor Identification API. It requires a Professional or " +
      'Enterprise subscription of Marketing, Sales, Service or Content Hub.'
  )
}

export function validationError (message: string, errors?: HubSpotErrorDetail[]): HubSpotErrorBody {
  return errorBody('VALIDATION_ERROR', message, errors ? { errors } : {})
}

export function notFoundError (method: string, path: string): HubSpotErrorBody {
  return errorBody('OBJECT_NOT_FOUND', `No resource matches ${method} ${path}.`)
}

export function methodNotAllowedError (method: string, path: string): HubSpotErrorBody {
  return errorBody('METHOD_NOT_ALLOWED', `HTTP method ${method} is not supported by ${path}; use POST.`)
}

export function payloadTooLargeError (limitBytes: number): HubSpotErrorBody {
  return errorBody('VALIDATION_ERROR', `The request body exceeds the limit of ${limitBytes} bytes.`)
}

export function unsupportedMediaTypeError (contentType: string | undefined): HubSpotErrorBody {
  return errorBody('VALIDATION_ERROR', `Unsupported content type ${contentType ?? '(none)'}; send application/json.`)
}

export function rateLimitError (policy: RatePolicy): RateLimitErrorBody {
  const limit = policy === 'DAILY' ? 'daily' : 'ten_secondly_rolling'
  return {
    status: 'error',
    message: `You have reached your ${limit} limit.`,
    errorType: 'RATE_LIMIT',
    correlationId: randomUUID(),
    policyName: policy
  }
}

const CATEGORY_BY_STATUS: Record<number, string> = {
  400: 'VALIDATION_ERROR',
  401: 'INVALID_AUTHENTICATION',
  403: 'FORBIDDEN',
  404: 'OBJECT_NOT_FOUND',
  409: 'CONFLICT'
}

/** Default body for an injected status fault. */
export function statusFaultBody (status: number): HubSpotErrorBody | RateLimitErrorBody {
  if (status === 429) return rateLimitError('TEN_SECONDLY_ROLLING')
  const category = CATEGORY_BY_STATUS[status] ?? (status >= 500 ? 'INTERNAL_ERROR' : 'ERROR')
  return errorBody(category, STATUS_CODES[status] ?? `HTTP ${status}`)
}
