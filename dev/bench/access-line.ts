import { pino } from 'pino'
import type { AccessLine } from '../../src/access-log.js'
import { createLoggers } from '../../src/logging.js'

/**
 * The cost of the one line per request, in isolation: a pino logger on pino's synchronous stdout
 * destination (a write(2) per line) against the service's own access line (createLoggers: the
 * hand-built line on the batched stdout). Both write to this process's stdout, so run it with stdout
 * sent where a container's goes (a pipe) or to /dev/null; the figures go to stderr:
 *
 *   node --import tsx dev/bench/access-line.ts | cat > /dev/null
 */

const LINES = 200_000
const ROUNDS = 5
const line: AccessLine = { reqId: 'req-000123', method: 'GET', path: '/chat-token', status: 200, ms: 0.4, code: undefined, user: 'Zm9vYmFyYmF6cXV4' }

function cpuUsPerLine (write: () => void): number {
  for (let i = 0; i < 10_000; i++) write()
  const started = process.cpuUsage()
  for (let i = 0; i < LINES; i++) write()
  const used = process.cpuUsage(started)
  return (used.user + used.system) / LINES
}

export function measureAccessLine (): Array<{ variant: string; usPerLine: number[] }> {
  const perLine = pino({ level: 'info' }, pino.destination({ dest: 1, sync: true }))
  const service = createLoggers('info')
  const variants = [
    { variant: 'pino logger, a write(2) per line', write: () => perLine.info({ ...line }, 'request'), usPerLine: [] as number[] },
    { variant: 'the service\'s access line (hand-built, batched stdout)', write: () => service.access({ ...line }), usPerLine: [] as number[] }
  ]
  for (let round = 0; round < ROUNDS; round++) {
    for (const variant of variants) variant.usPerLine.push(cpuUsPerLine(variant.write))
  }
  service.close()
  return variants.map(({ variant, usPerLine }) => ({ variant, usPerLine }))
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const { variant, usPerLine } of measureAccessLine()) {
    const sorted = [...usPerLine].sort((a, b) => a - b)
    process.stderr.write(`${variant}: median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(2)} µs CPU a line (rounds: ${usPerLine.map(us => us.toFixed(2)).join(', ')})\n`)
  }
}
