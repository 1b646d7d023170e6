export const CONTROL_PREFIX = '/__emulator'

export interface TokenCreateRoute {
  /** `YYYY-MM` for date-versioned paths, undefined for the two legacy v3 paths. */
  dateVersion: string | undefined
}

const LEGACY_PATHS = new Set([
  '/conversations/v3/visitor-identification/tokens/create',
  '/visitor-identification/v3/tokens/create'
])
const DATE_VERSIONED = /^\/visitor-identification\/([^/]+)\/tokens\/create$/
const DATE_VERSION = /^\d{4}-(0[1-9]|1[0-2])$/

export function isControlPath (pathname: string): boolean {
  return pathname === CONTROL_PREFIX || pathname.startsWith(`${CONTROL_PREFIX}/`)
}

export function matchTokenCreate (pathname: string): TokenCreateRoute | undefined {
  if (LEGACY_PATHS.has(pathname)) return { dateVersion: undefined }
  const version = DATE_VERSIONED.exec(pathname)?.[1]
  if (version !== undefined && DATE_VERSION.test(version)) return { dateVersion: version }
  return undefined
}
