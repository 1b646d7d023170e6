import type { Env } from './types.js'

/** Reads and checks one variable at a time, noting each problem instead of stopping at the first. */
export class EnvReader {
  constructor (private readonly env: Env, private readonly problems: string[]) {}

  raw (name: string): string | undefined {
    const value = this.env[name]
    if (value === undefined) return undefined
    const trimmed = value.trim()
    return trimmed === '' ? undefined : trimmed
  }

  problem (name: string, why: string): void {
    this.problems.push(`${name}: ${why}`)
  }

  text (name: string, fallback: string): string {
    return this.raw(name) ?? fallback
  }

  integer (name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name)
    if (value === undefined) return fallback
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      this.problem(name, `must be a whole number from ${min} to ${max}, got "${value}"`)
      return fallback
    }
    return Number(value)
  }

  boolean (name: string, fallback: boolean): boolean {
    const value = this.raw(name)?.toLowerCase()
    if (value === undefined) return fallback
    if (value === 'true' || value === '1') return true
    if (value === 'false' || value === '0') return false
    this.problem(name, `must be "true" or "false", got "${value}"`)
    return fallback
  }

  oneOf<T extends string> (name: string, allowed: readonly T[], fallback: T): T {
    const value = this.raw(name)
    if (value === undefined) return fallback
    const match = allowed.find(candidate => candidate === value.toLowerCase())
    if (match === undefined) {
      this.problem(name, `must be one of ${allowed.join(', ')}, got "${value}"`)
      return fallback
    }
    return match
  }

  matching (name: string, fallback: string, pattern: RegExp, expected: string): string {
    const value = this.raw(name)
    if (value === undefined) return fallback
    if (!pattern.test(value)) {
      this.problem(name, `must be ${expected}, got "${value}"`)
      return fallback
    }
    return value
  }

  url (name: string, fallback: string, protocols: string[]): string {
    return this.optionalUrl(name, protocols) ?? fallback
  }

  optionalUrl (name: string, protocols: string[]): string | undefined {
    const value = this.raw(name)
    if (value === undefined) return undefined
    const expected = protocols.map(p => `${p}//host:port`).join(' or ')
    if (!URL.canParse(value)) {
      // The value may embed a password (redis://:secret@host): only parts that cannot hold it are echoed,
      // and nothing at all once an "@" says credentials are there.
      const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(value)?.[1]
      const port = authority === undefined ? undefined : /:([^:\]]*)$/.exec(authority)?.[1]
      const why = authority === undefined
        ? `is not a URL (expected ${expected})`
        : port !== undefined && (!/^\d{0,5}$/.test(port) || Number(port) > 65535)
          ? `is not a valid URL: its port ${value.includes('@') ? '' : `"${port}" `}is not a number from 0 to 65535`
          : `is not a valid URL: its host ${value.includes('@') ? '' : `"${authority}" `}does not parse (expected ${expected})`
      this.problem(name, why)
      return undefined
    }
    const protocol = new URL(value).protocol
    if (!protocols.includes(protocol)) {
      this.problem(name, `must start with ${protocols.map(p => `${p}//`).join(' or ')}, got "${protocol}"`)
      return undefined
    }
    return value.replace(/\/+$/, '')
  }

  list (name: string): string[] {
    return (this.raw(name) ?? '').split(',').map(item => item.trim()).filter(item => item !== '')
  }
}

/** A secret from NAME, or from the file NAME_FILE names (which wins). */
export function readSecret (read: EnvReader, name: string, readFile: (path: string) => string, required: boolean): string | undefined {
  const fileName = `${name}_FILE`
  const path = read.raw(fileName)
  let value: string | undefined
  if (path !== undefined) {
    try {
      value = readFile(path).trim()
    } catch (error) {
      read.problem(fileName, `cannot read "${path}" (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
      return undefined
    }
    if (value === '') {
      read.problem(fileName, `"${path}" is empty`)
      return undefined
    }
  } else {
    value = read.raw(name)
  }
  if (value === undefined) {
    if (required) read.problem(name, `is required (or set ${fileName})`)
    return undefined
  }
  return value
}

/** Several secrets or keys, newest first: separated by commas or line breaks (a secret holds neither). */
export function secretList (text: string): string[] {
  return text.split(/[,\r\n]+/).map(item => item.trim()).filter(item => item !== '')
}

/** "secret 2 of 3 " when there are several, else nothing: problems name the one they are about. */
export function ordinal (index: number, count: number): string {
  return count === 1 ? '' : `secret ${index + 1} of ${count} `
}
