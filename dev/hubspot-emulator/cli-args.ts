import { parseArgs } from 'node:util'
import { parseFaultPlan, type Fault, type FaultPlan } from './faults.js'
import { parseOptions } from './options.js'
import type { EmulatorOptions, RateLimitOptions } from './types.js'

export const CLI_DEFAULT_PORT = 8090

export const USAGE = `Usage: npm run emulator -- [options]   (each flag overrides its environment variable)

  --port <n>            EMULATOR_PORT            listening port (default ${CLI_DEFAULT_PORT}; 0 picks a free one)
  --host <addr>         EMULATOR_HOST            listening address (default 127.0.0.1)
  --tokens <a,b>        EMULATOR_ACCESS_TOKENS   accepted bearer tokens (default emulator-access-token)
  --scopes <a,b>        EMULATOR_SCOPES          scopes the tokens carry (default the visitor-identification scope)
  --no-tier             EMULATOR_TIER_ALLOWED=false  answer 403 as for a Starter/Free portal
  --latency-ms <n>      EMULATOR_LATENCY_MS      delay before every API answer (default 0)
  --rate-limit <n/t>    EMULATOR_RATE_LIMIT      rolling window, e.g. 100/10s (default), 190/10s, 50/500ms
  --daily-limit <n>     EMULATOR_DAILY_LIMIT     daily budget (default 250000)
  --retry-after         EMULATOR_RETRY_AFTER=true    send Retry-After on 429s
  --fault-rate <0..1>   EMULATOR_FAULT_RATE      share of API calls answered with a random fault (default 0)
  --faults <list>       EMULATOR_FAULTS          faults to pick from, e.g. status:503,reset,hang,delay:500,trickle:20
                                                 (default status:503)
  -h, --help            show this help`

export type CliCommand =
  | { kind: 'help' }
  | { kind: 'run'; options: EmulatorOptions & { port: number }; faults: FaultPlan | undefined }

export class CliUsageError extends Error {
  override name = 'CliUsageError'
}

type Env = Record<string, string | undefined>

/** Pure: flags and environment in, emulator options out; throws CliUsageError on anything it cannot use. */
export function parseCliArgs (argv: string[], env: Env): CliCommand {
  const values = readFlags(argv)
  if (values.help) return { kind: 'help' }

  const pick = (flag: string | undefined, name: string): string | undefined => flag ?? nonEmpty(env[name])
  const port = pick(values.port, 'EMULATOR_PORT')
  const host = pick(values.host, 'EMULATOR_HOST')
  const tokens = pick(values.tokens, 'EMULATOR_ACCESS_TOKENS')
  const scopes = pick(values.scopes, 'EMULATOR_SCOPES')
  const latency = pick(values['latency-ms'], 'EMULATOR_LATENCY_MS')
  const rateLimit = pick(values['rate-limit'], 'EMULATOR_RATE_LIMIT')
  const dailyLimit = pick(values['daily-limit'], 'EMULATOR_DAILY_LIMIT')
  const faultRate = pick(values['fault-rate'], 'EMULATOR_FAULT_RATE')
  const faultList = pick(values.faults, 'EMULATOR_FAULTS')

  const options: EmulatorOptions & { port: number } = {
    port: port === undefined ? CLI_DEFAULT_PORT : integer(port, '--port / EMULATOR_PORT')
  }
  if (host !== undefined) options.host = host
  if (tokens !== undefined) options.accessTokens = list(tokens)
  if (scopes !== undefined) options.scopes = list(scopes)
  if (values['no-tier']) options.tierAllowed = false
  else if (nonEmpty(env.EMULATOR_TIER_ALLOWED) !== undefined) options.tierAllowed = boolean(env.EMULATOR_TIER_ALLOWED!, 'EMULATOR_TIER_ALLOWED')
  if (latency !== undefined) options.latencyMs = integer(latency, '--latency-ms / EMULATOR_LATENCY_MS')
  if (rateLimit !== undefined) options.rateLimit = parseRateLimit(rateLimit)
  if (dailyLimit !== undefined) options.dailyLimit = integer(dailyLimit, '--daily-limit / EMULATOR_DAILY_LIMIT')
  if (values['retry-after']) options.retryAfterOn429 = true
  else if (nonEmpty(env.EMULATOR_RETRY_AFTER) !== undefined) options.retryAfterOn429 = boolean(env.EMULATOR_RETRY_AFTER!, 'EMULATOR_RETRY_AFTER')

  try {
    parseOptions(options)
  } catch (error) {
    throw new CliUsageError(error instanceof Error ? error.message : String(error))
  }
  return { kind: 'run', options, faults: faultPlan(faultRate, faultList) }
}

function readFlags (argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        tokens: { type: 'string' },
        scopes: { type: 'string' },
        'no-tier': { type: 'boolean' },
        'latency-ms': { type: 'string' },
        'rate-limit': { type: 'string' },
        'daily-limit': { type: 'string' },
        'retry-after': { type: 'boolean' },
        'fault-rate': { type: 'string' },
        faults: { type: 'string' },
        help: { type: 'boolean', short: 'h' }
      }
    }).values
  } catch (error) {
    throw new CliUsageError(error instanceof Error ? error.message : String(error))
  }
}

/** `100/10s`, `190/10s`, `100/1s`, `50/500ms`. */
export function parseRateLimit (text: string): RateLimitOptions {
  const match = /^(\d+)\/(\d+)(ms|s)$/.exec(text.trim())
  if (!match) throw new CliUsageError(`rate limit "${text}" must look like 100/10s or 50/500ms`)
  const max = Number(match[1])
  const intervalMs = Number(match[2]) * (match[3] === 's' ? 1000 : 1)
  if (intervalMs < 1) throw new CliUsageError(`rate limit "${text}" needs an interval above zero`)
  return { max, intervalMs }
}

function faultPlan (rateText: string | undefined, listText: string | undefined): FaultPlan | undefined {
  if (rateText === undefined) {
    if (listText !== undefined) throw new CliUsageError('--faults / EMULATOR_FAULTS needs --fault-rate / EMULATOR_FAULT_RATE')
    return undefined
  }
  const faults = list(listText ?? 'status:503').map(parseFaultSpec)
  try {
    return parseFaultPlan({ random: { rate: Number(rateText), faults } })
  } catch (error) {
    throw new CliUsageError(error instanceof Error ? error.message : String(error))
  }
}

/** `kind` or `kind:argument`, the argument being the status, ms, bytes per second or location. */
function parseFaultSpec (spec: string): Fault {
  const colon = spec.indexOf(':')
  const kind = colon === -1 ? spec : spec.slice(0, colon)
  const argument = colon === -1 ? undefined : spec.slice(colon + 1)
  const numeric = (): number => integer(argument ?? '', `fault "${spec}"`)
  switch (kind) {
    case 'status':
      return { kind, status: numeric() }
    case 'delay':
      return { kind, ms: numeric() }
    case 'trickle':
      return argument === undefined ? { kind } : { kind, bytesPerSecond: numeric() }
    case 'redirect':
      return argument === undefined ? { kind } : { kind, location: argument }
    case 'reset':
    case 'reset-mid-body':
    case 'hang':
    case 'malformed-json':
    case 'wrong-json':
    case 'oversized':
      if (argument !== undefined) throw new CliUsageError(`fault "${spec}" takes no argument`)
      return { kind }
    default:
      throw new CliUsageError(`unknown fault "${spec}"`)
  }
}

function nonEmpty (value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value
}

function list (text: string): string[] {
  return text.split(',').map((item) => item.trim()).filter((item) => item !== '')
}

function integer (text: string, what: string): number {
  if (!/^\d+$/.test(text.trim())) throw new CliUsageError(`${what} must be a non-negative integer, got "${text}"`)
  return Number(text.trim())
}

function boolean (text: string, what: string): boolean {
  const normalized = text.trim().toLowerCase()
  if (['true', '1', 'yes'].includes(normalized)) return true
  if (['false', '0', 'no'].includes(normalized)) return false
  throw new CliUsageError(`${what} must be true or false, got "${text}"`)
}
