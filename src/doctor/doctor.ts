import { Agent } from 'undici'
import type { Config, Env } from '../config/types.js'
import { ConfigError, loadConfig, type LoadConfigOptions } from '../config/load-config.js'
import { maskedConfig, serviceVersion } from '../startup.js'
import type { DoctorArgs } from './args.js'
import { checkResult, type CheckResult } from './check.js'
import { checkUserDirectory } from './directory-check.js'
import { checkHubSpot } from './hubspot-check.js'
import { checkJwks } from './jwks-check.js'
import { checkRedis } from './redis-check.js'
import { checkSession } from './session-check.js'

/** 0: every check passed (warnings allowed); 1: a check failed; 2: bad usage or invalid configuration. */
export type DoctorExitCode = 0 | 1 | 2

export interface DoctorReport {
  version: string
  exitCode: DoctorExitCode
  checks: CheckResult[]
}

export interface DoctorOptions {
  env: Env
  args: Pick<DoctorArgs, 'email' | 'jwt'>
  loadConfigOptions?: LoadConfigOptions
}

/**
 * `npm run doctor`: the service's own configuration, then every outside party it depends on, checked
 * with the service's own code wherever there is some (configuration, HubSpot client, session plugin,
 * identity mapping, user directory).
 */
export async function runDoctor ({ env, args, loadConfigOptions }: DoctorOptions): Promise<DoctorReport> {
  const version = serviceVersion()
  let config: Config
  try {
    config = loadConfig(env, loadConfigOptions)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    const refused = checkResult('configuration', 'fail', `invalid: ${error.problems.length} problem${error.problems.length === 1 ? '' : 's'}; the service would not start`, error.problems)
    return { version, exitCode: 2, checks: [refused] }
  }

  const dispatcher = new Agent({ connect: { timeout: config.hubspot.timeoutMs } })
  try {
    const session = checkSession(config, args.jwt)
    const checks = await Promise.all([
      checkConfiguration(config),
      checkHubSpot(config, args.email, dispatcher),
      session.then(outcome => outcome.result),
      checkJwks(config, dispatcher),
      session.then(outcome => checkUserDirectory(config, outcome.lookup, dispatcher)),
      checkRedis(config)
    ])
    return { version, exitCode: checks.some(check => check.status === 'fail') ? 1 : 0, checks }
  } finally {
    await dispatcher.close()
  }
}

async function checkConfiguration (config: Config): Promise<CheckResult> {
  const masked = maskedConfig(config) as { hubspot: { baseUrl: string }; redisUrl?: string }
  const facts = {
    hubspot: `${masked.hubspot.baseUrl} (${config.hubspot.apiVersion})`,
    sessionKey: config.jwt.key.kind,
    algorithms: config.jwt.algorithms,
    userDirectory: config.userLookup !== undefined,
    redis: masked.redisUrl ?? null,
    warnings: config.warnings.map(warning => warning.setting)
  }
  const warnings = config.warnings.map(warning => `${warning.setting}: ${warning.message}`)
  const count = `${warnings.length} warning${warnings.length === 1 ? '' : 's'}`
  return checkResult('configuration', warnings.length === 0 ? 'ok' : 'warn', `valid${warnings.length === 0 ? '' : `, with ${count} the service logs at start-up`}`, warnings, facts)
}
