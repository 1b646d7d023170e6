import type { ReadinessCheck } from '../readiness.js'
import type { AttemptReport } from './client.js'

export type HubSpotHealthStatus = 'ok' | 'credentials_refused' | 'unavailable' | 'unknown'

/**
 * HubSpot as the client last saw it, for /readyz, from the outcomes of real calls (a probe never calls):
 * `ok` after an answer that accepted the access token, `credentials_refused` after a 401 or 403,
 * `unavailable` after a 5xx, a timeout or a failed connection, `unknown` before any call and after the
 * access token was replaced. A 429, or a call cut off by its request's own deadline, changes nothing.
 */
export class HubSpotHealth {
  #status: HubSpotHealthStatus = 'unknown'
  #reason = ''

  record (report: AttemptReport): void {
    switch (report.outcome) {
      case 'ok':
        this.#set('ok', '')
        break
      case 'rejected':
        if (report.status === 401 || report.status === 403) {
          this.#set('credentials_refused', `HubSpot answered ${report.status} to the last call: the access token is refused, or lacks the scope or the tier`)
        } else {
          // A 400 comes after the token was accepted.
          this.#set('ok', '')
        }
        break
      case 'server_error':
        this.#set('unavailable', `HubSpot answered ${report.status ?? '5xx'} to the last call`)
        break
      case 'connection_error':
        this.#set('unavailable', 'the last call could not reach HubSpot')
        break
      case 'timeout':
        this.#set('unavailable', 'HubSpot did not answer the last call in time')
        break
      default:
        break
    }
  }

  /** The access token changed: what was seen with the old one says nothing about the new one. */
  reset (): void {
    this.#set('unknown', '')
  }

  get status (): HubSpotHealthStatus {
    return this.#status
  }

  readonly check: ReadinessCheck = () => this.#reason === '' ? this.#status : { status: this.#status, reason: this.#reason }

  #set (status: HubSpotHealthStatus, reason: string): void {
    this.#status = status
    this.#reason = reason
  }
}
