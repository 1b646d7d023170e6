import { normaliseEmail } from '../auth/email.js'

/** The doctor's command line. */
export interface DoctorArgs {
  /** Make one real token request for this address (canonical form). */
  email: string | undefined
  /** A session JWT to verify, or `-` to read it from standard input. */
  jwt: string | undefined
  json: boolean
  help: boolean
}

export class UsageError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

export const USAGE = `usage: npm run doctor -- [--email you@company.com] [--jwt <session token> | --jwt -] [--json]
       node dist/doctor/cli.js [the same options]

Checks a deployment with the service's own configuration (environment and ./.env):
  configuration, HubSpot, the JWKS, the user directory and Redis when configured.
  --email ADDRESS  make one real token request for ADDRESS (it counts against HubSpot's limits)
  --jwt TOKEN      verify a session token as the service does and show whom it maps to
  --jwt -          the same, reading the token from standard input (keeps it out of shell history)
  --json           one JSON document on stdout, for scripts
Exit codes: 0 every check passed (warnings allowed), 1 a check failed, 2 bad usage or invalid configuration.`

export function parseDoctorArgs (argv: readonly string[]): DoctorArgs {
  const args: DoctorArgs = { email: undefined, jwt: undefined, json: false, help: false }
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index]!
    const equals = argument.indexOf('=')
    const flag = argument.startsWith('--') && equals !== -1 ? argument.slice(0, equals) : argument
    const inline = flag === argument ? undefined : argument.slice(equals + 1)
    const value = (): string => {
      const given = inline ?? argv[++index]
      if (given === undefined || given === '') throw new UsageError(`${flag} needs a value`)
      return given
    }
    switch (flag) {
      case '--email': {
        const raw = value()
        const email = normaliseEmail(raw)
        if (email === undefined) throw new UsageError(`--email: "${raw}" is not an email address the service would send to HubSpot`)
        args.email = email
        break
      }
      case '--jwt':
        args.jwt = value()
        break
      case '--json':
        args.json = true
        break
      case '--help':
      case '-h':
        args.help = true
        break
      default:
        throw new UsageError(`unknown argument "${argument.startsWith('--') ? flag : argument}"`)
    }
  }
  return args
}
