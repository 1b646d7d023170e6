import { CliUsageError, parseCliArgs, USAGE } from './cli-args.js'
import { createHubSpotEmulator } from './emulator.js'
import { DEFAULT_OPTIONS } from './options.js'

async function main (): Promise<void> {
  let command
  try {
    command = parseCliArgs(process.argv.slice(2), process.env)
  } catch (error) {
    if (!(error instanceof CliUsageError)) throw error
    process.stderr.write(`hubspot-emulator: ${error.message}\nRun with --help for the options.\n`)
    process.exit(1)
  }
  if (command.kind === 'help') {
    process.stdout.write(`${USAGE}\n`)
    return
  }

  const emulator = await createHubSpotEmulator(command.options)
  if (command.faults) emulator.setFaults(command.faults)
  const tokens = (command.options.accessTokens ?? DEFAULT_OPTIONS.accessTokens).join(', ')
  process.stdout.write(`HubSpot emulator listening on ${emulator.url} (access token: ${tokens})\n`)

  const stop = (): void => {
    emulator.close().then(
      () => process.exit(0),
      () => process.exit(1)
    )
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

main().catch((error: unknown) => {
  process.stderr.write(`hubspot-emulator: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(1)
})
