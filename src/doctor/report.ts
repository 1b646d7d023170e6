import type { CheckStatus } from './check.js'
import type { DoctorReport } from './doctor.js'

const marks: Record<CheckStatus, string> = { ok: '[ok]  ', warn: '[warn]', fail: '[FAIL]', skip: '[skip]' }

/** For people: a line per check, its details indented under it, and the verdict. */
export function formatHuman (report: DoctorReport): string {
  const lines = [`chat-token doctor (version ${report.version}, Node ${process.version})`, '']
  for (const check of report.checks) {
    lines.push(`${marks[check.status]} ${check.name}: ${check.summary}`)
    for (const detail of check.details) lines.push(`         ${detail}`)
  }
  const count = (status: CheckStatus): number => report.checks.filter(check => check.status === status).length
  const verdict = report.exitCode === 2
    ? 'The configuration is invalid: fix it, then run the doctor again.'
    : report.exitCode === 1
      ? `${count('fail')} check${count('fail') === 1 ? '' : 's'} failed.`
      : `Every check passed${count('warn') > 0 ? ` (${count('warn')} with a warning)` : ''}${count('skip') > 0 ? `; ${count('skip')} skipped` : ''}.`
  lines.push('', `${verdict} Exit code ${report.exitCode}.`, '')
  return lines.join('\n')
}

/** For scripts: one JSON document. */
export function formatJson (report: DoctorReport): string {
  return `${JSON.stringify({ ok: report.exitCode === 0, ...report })}\n`
}
