import { readFileSync } from 'node:fs'
import type { Config } from './config/types.js'

/** What the start-up log line says: enough to tell, from the logs alone, what runs and how it is set. */
export interface StartupSummary {
  version: string
  node: string
  url: string
  metricsUrl: string | undefined
  config: unknown
}

export const MASK = '[masked]'

/** Config keys whose string values are secrets, wherever they sit in the tree. */
const secretKeys = new Set(['accessToken', 'secret', 'pem', 'authorization', 'password', 'cacheKey'])

/** package.json sits one level above both src/ (tsx) and dist/ (the image). */
export function serviceVersion (): string {
  try {
    const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown }
    return typeof manifest.version === 'string' ? manifest.version : 'unknown'
  } catch {
    return 'unknown'
  }
}

/**
 * The effective configuration with every secret replaced. Masking walks the whole tree by key name and
 * hides URL passwords anywhere, so configuration added later is masked without being listed here.
 */
export function maskedConfig (config: Config): unknown {
  return mask(config, undefined)
}

function mask (value: unknown, key: string | undefined): unknown {
  if (typeof value === 'string') {
    return key !== undefined && secretKeys.has(key) && value !== '' ? MASK : maskUrlCredentials(withoutQuery(value))
  }
  if (Array.isArray(value)) return value.map(item => mask(item, undefined))
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([name, item]) => [name, mask(item, name)]))
  }
  return value
}

const urlPattern = /^[a-z][a-z0-9+.-]*:\/\//i

/**
 * A URL's query and fragment may carry credentials (`?password=`, `?api_key=`): only scheme, host and
 * path are logged.
 */
function withoutQuery (text: string): string {
  if (!urlPattern.test(text)) return text
  const end = text.search(/[?#]/)
  return end === -1 ? text : text.slice(0, end)
}

/** `redis://user:secret@host` → `redis://user:[masked]@host`; a lone user part may itself be a token. */
function maskUrlCredentials (text: string): string {
  const match = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#@]*)@/i.exec(text)
  if (match === null) return text
  const userinfo = match[2] ?? ''
  const colon = userinfo.indexOf(':')
  const masked = colon === -1 ? MASK : `${userinfo.slice(0, colon)}:${MASK}`
  return `${match[1]}${masked}@${text.slice(match[0].length)}`
}

export function startupSummary (config: Config, listeners: { url: string; metricsUrl: string | undefined }): StartupSummary {
  return { version: serviceVersion(), node: process.version, ...listeners, config: maskedConfig(config) }
}
