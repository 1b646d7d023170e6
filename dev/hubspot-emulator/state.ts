import { randomBytes } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import { FaultScheduler, type FaultPlan } from './faults.js'
import { reconfigure } from './options.js'
import { RateLimiter } from './rate-limiter.js'
import type { EmulatorCall, EmulatorStats, IssuedToken, ResolvedOptions } from './types.js'

const TOKEN_LIFETIME_MS = 12 * 60 * 60 * 1000

/** Everything the emulator remembers between requests; reset() returns it to the creation state. */
export class EmulatorState {
  #initial: ResolvedOptions
  options: ResolvedOptions
  readonly calls: EmulatorCall[] = []
  readonly #issued = new Map<string, IssuedToken>()
  readonly faults = new FaultScheduler()
  readonly limiter = new RateLimiter(() => this.options)
  /** Responses held open on purpose (hang, trickle); reset and close cut them. */
  readonly held = new Set<ServerResponse>()
  accepted = 0
  rejected429 = 0

  constructor (options: ResolvedOptions) {
    this.#initial = options
    this.options = structuredClone(options)
  }

  /** Records the real port once listening, so a config patch may repeat it and reset() keeps it. */
  listeningOn (port: number): void {
    this.#initial = { ...this.#initial, port }
    this.options = { ...this.options, port }
  }

  configure (patch: unknown): void {
    this.options = reconfigure(this.options, patch)
  }

  setFaults (plan: FaultPlan): void {
    this.faults.set(plan)
  }

  issue (details: Omit<IssuedToken, 'issuedAt' | 'expiresAt'>, now: number): string {
    let token = randomBytes(32).toString('base64url')
    while (this.#issued.has(token)) token = randomBytes(32).toString('base64url')
    this.#issued.set(token, {
      ...details,
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + TOKEN_LIFETIME_MS).toISOString()
    })
    return token
  }

  issued (token: string): IssuedToken | undefined {
    const found = this.#issued.get(token)
    return found ? { ...found } : undefined
  }

  snapshotCalls (): EmulatorCall[] {
    return this.calls.map((call) => ({ ...call }))
  }

  stats (): EmulatorStats {
    return {
      calls: this.calls.length,
      accepted: this.accepted,
      rejected429: this.rejected429,
      maxInWindow: this.limiter.maxInWindow
    }
  }

  destroyHeld (): void {
    for (const res of this.held) res.destroy()
    this.held.clear()
  }

  reset (): void {
    this.destroyHeld()
    this.calls.length = 0
    this.#issued.clear()
    this.faults.clear()
    this.limiter.clear()
    this.accepted = 0
    this.rejected429 = 0
    this.options = structuredClone(this.#initial)
  }
}
