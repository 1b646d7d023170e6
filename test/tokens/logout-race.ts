import type { HubSpotEmulator } from '../../dev/hubspot-emulator/emulator.js'
import { bearer, signSession, type RunningService, until } from '../helper.js'

/**
 * Logouts raced against mints. Each lane is one person who, over and over, asks for a token (a mint
 * starts: each round the session carries another given name, so the token cached last round does not
 * answer it), logs out at some point of that mint (at once, a few turns later, once HubSpot has the call,
 * or after the answer), and asks again right after the logout has answered, alongside, and once
 * everything has settled. Which replica takes which request rotates.
 *
 * The rule checked: a request that starts after a DELETE has answered never receives a token whose
 * HubSpot call arrived before that DELETE was sent. The emulator records calls as they arrive and the
 * token each issued, so "minted before the DELETE" is read from its call log, not from any clock.
 */

export interface RaceOptions {
  lanes: number
  iterations: number
}

export interface RaceReport {
  iterations: number
  /** Answers to requests that started after their DELETE answered. */
  checked: number
  violations: string[]
  /** Every status seen, with counts: anything but 200 and 204 is a failure of its own. */
  statuses: Record<number, number>
  hubspotCalls: number
}

interface Logout {
  email: string
  /** How many calls the emulator had received when the DELETE was sent. */
  callsBefore: number
  /** Tokens handed to requests that started after the DELETE answered. */
  tokensAfter: string[]
}

const turns = async (count: number): Promise<void> => {
  for (let i = 0; i < count; i++) await new Promise(resolve => setImmediate(resolve))
}

export async function raceLogouts (services: RunningService[], emulator: HubSpotEmulator, options: RaceOptions): Promise<RaceReport> {
  const logouts: Logout[] = []
  const statuses: Record<number, number> = {}
  const count = (status: number): void => { statuses[status] = (statuses[status] ?? 0) + 1 }
  // Whose calls arrived, in order; copying the emulator's whole log on every poll of every lane would
  // cost more CPU than the race itself, so it is read only when calls were added, at most every 10 ms.
  const arrivals: Array<string | undefined> = []
  let readAt = 0
  const callsFor = (email: string, from: number): boolean => {
    if (emulator.stats().calls > arrivals.length && Date.now() - readAt >= 10) {
      readAt = Date.now()
      for (const call of emulator.calls().slice(arrivals.length)) arrivals.push((call.body as { email?: string } | undefined)?.email)
    }
    return arrivals.indexOf(email, from) !== -1
  }

  async function lane (laneNumber: number): Promise<void> {
    const email = `lane.${laneNumber}@example.com`
    const on = (i: number, step: number): RunningService => services[(laneNumber + i + step) % services.length]!
    for (let i = 0; i < options.iterations; i++) {
      const session = bearer(signSession({ sub: email, email, given_name: `Round ${i}` }))
      const get = async (service: RunningService): Promise<string | undefined> => {
        const answer = await service.get('/chat-token', session)
        count(answer.status)
        return answer.status === 200 ? answer.json().token as string : undefined
      }
      const callsAtStart = emulator.stats().calls
      let answered = false
      const first = get(on(i, 0)).finally(() => { answered = true })
      const moment = (laneNumber + i) % 4
      if (moment === 1) await turns(1 + (i % 5))
      if (moment === 2) await until('HubSpot has the mint', () => answered || callsFor(email, callsAtStart), 30_000)
      if (moment === 3) await first
      const callsBefore = emulator.stats().calls
      const deleted = await on(i, 1).send('DELETE', '/chat-token', session)
      count(deleted.status)
      const [right, alongside] = await Promise.all([get(on(i, 2)), get(on(i, 3))])
      await first
      const settled = await get(on(i, 4))
      logouts.push({ email, callsBefore, tokensAfter: [right, alongside, settled].filter(token => token !== undefined) })
    }
  }

  await Promise.all(Array.from({ length: options.lanes }, (_, laneNumber) => lane(laneNumber)))

  const calls = emulator.calls()
  const violations: string[] = []
  let checked = 0
  for (const logout of logouts) {
    const before = new Set(calls.slice(0, logout.callsBefore)
      .filter(call => (call.body as { email?: string } | undefined)?.email === logout.email && call.token !== undefined)
      .map(call => call.token!))
    for (const token of logout.tokensAfter) {
      checked++
      if (before.has(token)) violations.push(`${logout.email}: a token minted before the DELETE was served after it`)
    }
  }
  return { iterations: logouts.length, checked, violations, statuses, hubspotCalls: calls.length }
}
