/** Thrown for bad emulator options or fault plans; the control API answers it with 400. */
export class InvalidInputError extends Error {
  readonly problems: string[]

  constructor (what: string, problems: string[]) {
    super(`invalid ${what}: ${problems.join('; ')}`)
    this.name = 'InvalidInputError'
    this.problems = problems
  }
}

export function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function isNonNegativeInteger (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

export function isStringArray (value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string')
}

export function unknownKeys (value: Record<string, unknown>, allowed: readonly string[]): string[] {
  return Object.keys(value).filter((key) => !allowed.includes(key))
}
