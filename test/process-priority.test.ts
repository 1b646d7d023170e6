import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import t from 'tap'
import { childrenOfThisProcess, shareOwnPriority } from './process-priority.js'

/** What test/process-priority.ts does to a child's scheduling group, read back from /proc. */

const skip = existsSync('/proc/self/autogroup') ? false : 'this kernel has no autogroups (/proc/self/autogroup): nothing to share'

const niceOf = (pid: number): number => Number(/ nice (-?\d+)/.exec(readFileSync(`/proc/${pid}/autogroup`, 'utf8'))?.[1])

/**
 * This process's group as the kernel shows it. A process that descends from init without ever
 * starting a session (as a CI runner may start the suite) is in the root group, shown as an empty
 * file; the rest show `/autogroup-N nice K`.
 */
const ownGroup = (): string => readFileSync('/proc/self/autogroup', 'utf8')

/** A child that waits, in a session of its own (`detached`) or in this one. */
async function child (t: { teardown: (fn: () => unknown) => void }, detached: boolean): Promise<number> {
  const started = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { detached, stdio: 'ignore' })
  t.teardown(() => { started.kill('SIGKILL') })
  await once(started, 'spawn')
  return started.pid!
}

t.test('a child in a session of its own gets the niceness asked for; one in this session is left alone', { skip }, async t => {
  const own = ownGroup()
  const apart = await child(t, true)
  const beside = await child(t, false)
  t.equal(niceOf(apart), 0, 'a new session\'s group starts at 0')
  t.ok(childrenOfThisProcess().includes(apart) && childrenOfThisProcess().includes(beside), 'both are listed as this process\'s children')

  shareOwnPriority(apart, 19)
  t.equal(niceOf(apart), 19, 'the detached child\'s group yields')
  shareOwnPriority(beside, 19)
  t.equal(ownGroup(), own, 'this process\'s own group, which holds the timing lane too, keeps its niceness')
})
