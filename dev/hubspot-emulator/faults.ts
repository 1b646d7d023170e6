import { InvalidInputError, isNonNegativeInteger, isRecord, unknownKeys } from './validate.js'

export type Fault =
  | { kind: 'status'; status: number; body?: unknown; headers?: Record<string, string> }
  | { kind: 'reset' }
  | { kind: 'reset-mid-body' }
  | { kind: 'hang' }
  | { kind: 'malformed-json' }
  | { kind: 'wrong-json' }
  | { kind: 'oversized' }
  | { kind: 'trickle'; bytesPerSecond?: number }
  | { kind: 'redirect'; location?: string }
  | { kind: 'delay'; ms: number }

export type FaultKind = Fault['kind']

export interface FaultPlan {
  sequence?: Fault[]
  latencyMs?: number
  random?: { rate: number; faults: Fault[] }
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/
const MAX_TRICKLE_RATE = 10 * 1024 * 1024

const BARE_KINDS = ['reset', 'reset-mid-body', 'hang', 'malformed-json', 'wrong-json', 'oversized'] as const

/** Validates an untrusted fault plan; throws InvalidInputError listing every problem. */
export function parseFaultPlan (input: unknown): FaultPlan {
  if (!isRecord(input)) throw new InvalidInputError('fault plan', ['expected a JSON object'])
  const problems = unknownKeys(input, ['sequence', 'latencyMs', 'random']).map((key) => `unknown field "${key}"`)
  const plan: FaultPlan = {}

  if (input.sequence !== undefined) {
    if (Array.isArray(input.sequence)) {
      plan.sequence = input.sequence.map((fault, index) => parseFault(fault, `sequence[${index}]`, problems))
    } else {
      problems.push('sequence must be an array of faults')
    }
  }
  if (input.latencyMs !== undefined) {
    if (isNonNegativeInteger(input.latencyMs)) plan.latencyMs = input.latencyMs
    else problems.push('latencyMs must be a non-negative integer')
  }
  if (input.random !== undefined) {
    const random = input.random
    if (!isRecord(random) || unknownKeys(random, ['rate', 'faults']).length > 0) {
      problems.push('random must be { rate, faults }')
    } else {
      const { rate, faults } = random
      if (typeof rate !== 'number' || !(rate >= 0 && rate <= 1)) problems.push('random.rate must be a number from 0 to 1')
      if (!Array.isArray(faults) || faults.length === 0) {
        problems.push('random.faults must be a non-empty array of faults')
      } else if (typeof rate === 'number') {
        plan.random = { rate, faults: faults.map((fault, index) => parseFault(fault, `random.faults[${index}]`, problems)) }
      }
    }
  }

  if (problems.length > 0) throw new InvalidInputError('fault plan', problems)
  return plan
}

function parseFault (input: unknown, where: string, problems: string[]): Fault {
  const fallback: Fault = { kind: 'reset' }
  if (!isRecord(input) || typeof input.kind !== 'string') {
    problems.push(`${where} must be an object with a string "kind"`)
    return fallback
  }
  const { kind } = input
  const extra = (allowed: string[]): boolean => {
    const unknown = unknownKeys(input, ['kind', ...allowed])
    for (const key of unknown) problems.push(`${where}: unknown field "${key}" for kind "${kind}"`)
    return unknown.length === 0
  }

  for (const bare of BARE_KINDS) {
    if (kind === bare) {
      extra([])
      return { kind: bare }
    }
  }
  switch (kind) {
    case 'status': {
      extra(['status', 'body', 'headers'])
      const { status, body, headers } = input
      if (!isNonNegativeInteger(status) || status < 200 || status > 599) {
        problems.push(`${where}.status must be an integer from 200 to 599`)
        return fallback
      }
      const fault: Fault = { kind, status }
      if (body !== undefined) fault.body = body
      if (headers !== undefined) {
        const parsed = parseHeaders(headers)
        if (parsed) fault.headers = parsed
        else problems.push(`${where}.headers must map valid header names to single-line string values`)
      }
      return fault
    }
    case 'trickle': {
      extra(['bytesPerSecond'])
      const { bytesPerSecond } = input
      if (bytesPerSecond === undefined) return { kind }
      if (typeof bytesPerSecond === 'number' && bytesPerSecond > 0 && bytesPerSecond <= MAX_TRICKLE_RATE) {
        return { kind, bytesPerSecond }
      }
      problems.push(`${where}.bytesPerSecond must be a number above 0 and at most ${MAX_TRICKLE_RATE}`)
      return fallback
    }
    case 'redirect': {
      extra(['location'])
      const { location } = input
      if (location === undefined) return { kind }
      if (typeof location === 'string' && location.length > 0 && HEADER_VALUE.test(location)) return { kind, location }
      problems.push(`${where}.location must be a non-empty single-line string`)
      return fallback
    }
    case 'delay': {
      extra(['ms'])
      if (isNonNegativeInteger(input.ms)) return { kind, ms: input.ms }
      problems.push(`${where}.ms must be a non-negative integer`)
      return fallback
    }
    default:
      problems.push(`${where}.kind "${kind}" is not a known fault`)
      return fallback
  }
}

function parseHeaders (value: unknown): Record<string, string> | undefined {
  if (!isRecord(value)) return undefined
  const headers: Record<string, string> = {}
  for (const [name, headerValue] of Object.entries(value)) {
    if (!HEADER_NAME.test(name) || typeof headerValue !== 'string' || !HEADER_VALUE.test(headerValue)) return undefined
    headers[name] = headerValue
  }
  return headers
}

/** Short label recorded on EmulatorCall.fault, e.g. "status:503" or "delay:200". */
export function describeFault (fault: Fault): string {
  switch (fault.kind) {
    case 'status':
      return `status:${fault.status}`
    case 'delay':
      return `delay:${fault.ms}`
    default:
      return fault.kind
  }
}

/** Hands out the scripted faults in order, then random ones at the configured rate. */
export class FaultScheduler {
  readonly #random: () => number
  #plan: FaultPlan = {}
  #next = 0

  constructor (random: () => number = Math.random) {
    this.#random = random
  }

  set (plan: FaultPlan): void {
    this.#plan = parseFaultPlan(plan)
    this.#next = 0
  }

  clear (): void {
    this.#plan = {}
    this.#next = 0
  }

  get latencyMs (): number {
    return this.#plan.latencyMs ?? 0
  }

  take (): Fault | undefined {
    const scripted = this.#plan.sequence?.[this.#next]
    if (scripted) {
      this.#next += 1
      return scripted
    }
    const random = this.#plan.random
    if (!random || this.#random() >= random.rate) return undefined
    return random.faults[Math.floor(this.#random() * random.faults.length)]
  }
}
