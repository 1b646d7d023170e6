import type { Env } from '../../src/config/types.js'
import type { CheckResult } from '../../src/doctor/check.js'
import { type DoctorReport, runDoctor } from '../../src/doctor/doctor.js'

/** The doctor in this process, against real peers on real sockets. */

export async function doctor (env: Env, args: { email?: string; jwt?: string } = {}): Promise<DoctorReport> {
  return runDoctor({ env, args: { email: args.email, jwt: args.jwt } })
}

export function check (report: DoctorReport, name: string): CheckResult {
  const found = report.checks.find(candidate => candidate.name === name)
  if (found === undefined) throw new Error(`no ${name} check in ${JSON.stringify(report)}`)
  return found
}
