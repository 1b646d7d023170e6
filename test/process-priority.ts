import { readFileSync, writeFileSync } from 'node:fs'
import { getPriority } from 'node:os'

/**
 * Linux schedules each session as a group of its own (autogroup) at the group's niceness, 0 unless
 * set, whatever the niceness of the processes in it. A process a test starts in a session of its own
 * (Chromium, which Playwright starts that way; a `detached` child) would then take as much CPU as the
 * whole suite beside it, while the rest of its lane yields at nice 19 to the timing files. These give
 * such a group the niceness of the test process that started it.
 */

/**
 * The autogroup a process is in (`/autogroup-85`), or undefined where there are none, or where it is in
 * the root group (a process descended from init's session without a session of its own, as a CI
 * runner may start the suite: its file is empty).
 */
function autogroupOf (pid: number | 'self'): string | undefined {
  try {
    return /^(\/autogroup-\d+) /.exec(readFileSync(`/proc/${pid}/autogroup`, 'utf8'))?.[1]
  } catch {
    return undefined
  }
}

/**
 * Gives the autogroup of `pid` the niceness `priority` (this process's own unless given), when that
 * group is not this process's own: the suite's own group holds the timing lane too, and must keep its
 * weight. Nothing happens where there are no autogroups (another OS, or turned off).
 */
export function shareOwnPriority (pid: number, priority = getPriority()): void {
  const group = autogroupOf(pid)
  if (group === undefined || group === autogroupOf('self')) return
  try {
    writeFileSync(`/proc/${pid}/autogroup`, String(priority))
  } catch {
    // Gone meanwhile, or a niceness below the group's that this user may not set: it keeps its own.
  }
}

/** The processes this one started (Linux; an empty list elsewhere). */
export function childrenOfThisProcess (): number[] {
  try {
    return readFileSync(`/proc/self/task/${process.pid}/children`, 'utf8').trim().split(/\s+/).filter(pid => pid !== '').map(Number)
  } catch {
    return []
  }
}
