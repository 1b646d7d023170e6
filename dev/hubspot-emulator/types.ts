import type { FaultPlan } from './faults.js'

export interface RateLimitOptions {
  max: number
  intervalMs: number
}

export interface EmulatorOptions {
  port?: number
  host?: string
  accessTokens?: string[]
  scopes?: string[]
  tierAllowed?: boolean
  latencyMs?: number
  rateLimit?: RateLimitOptions
  dailyLimit?: number
  retryAfterOn429?: boolean
}

export type ResolvedOptions = Required<EmulatorOptions>

export interface EmulatorCall {
  at: number
  method: string
  path: string
  authorization: string | undefined
  body: unknown
  status: number | null
  fault?: string
  /** The token this call issued, if it issued one: tests map tokens to the order calls arrived in. */
  token?: string
}

export interface IssuedToken {
  email: string
  firstName?: string
  lastName?: string
  issuedAt: string
  expiresAt: string
  path: string
}

export interface EmulatorStats {
  calls: number
  accepted: number
  rejected429: number
  maxInWindow: number
}

export interface HubSpotEmulator {
  url: string
  port: number
  calls(): EmulatorCall[]
  issued(token: string): IssuedToken | undefined
  setFaults(faults: FaultPlan): void
  configure(options: Partial<EmulatorOptions>): void
  reset(): void
  maxInWindow(): number
  stats(): EmulatorStats
  /** Sockets clients hold open to it right now (keep-alive, in flight or half-closed): leak checks. */
  openConnections(): Promise<number>
  close(): Promise<void>
}
