import { text } from 'node:stream/consumers'
import { processEnvironment } from '../environment.js'
import { parseDoctorArgs, USAGE, UsageError } from './args.js'
import { runDoctor } from './doctor.js'
import { formatHuman, formatJson } from './report.js'

/**
 * `npm run doctor` and, in the image, `node dist/doctor/cli.js`: the process side of the doctor
 * (arguments, environment, output, exit code). See docs/operations.md.
 */
async function main (): Promise<number> {
  let args
  try {
    args = parseDoctorArgs(process.argv.slice(2))
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    process.stderr.write(`chat-token doctor: ${error.message}\n${USAGE}\n`)
    return 2
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }
  if (args.jwt === '-') args.jwt = (await text(process.stdin)).trim()
  const report = await runDoctor({ env: processEnvironment(), args })
  process.stdout.write(args.json ? formatJson(report) : formatHuman(report))
  return report.exitCode
}

main().then(
  code => process.stdout.write('', () => process.exit(code)),
  (error: unknown) => {
    process.stderr.write(`chat-token doctor: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  }
)
