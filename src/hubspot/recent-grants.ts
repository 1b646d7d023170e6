/**
 * The budget slots Redis granted this replica within the last window. A Redis failover can lose the
 * newest writes: those the old master took after Sentinel promoted its replica (until clients hear of
 * the switch), and those not yet replicated when a master dies. The new master's budget log would then
 * miss calls that HubSpot still counts. Each replica therefore adds its own recent grants back (ZADD
 * NX, under the same members) whenever its link to Redis comes back up, as it does with the calls it
 * made on its own budget meanwhile.
 */
export class RecentGrants {
  readonly #grants: Array<{ member: string; at: number }> = []

  constructor (private readonly windowMs: number, private readonly maxEntries: number) {}

  /** A slot granted for `at` (this process's clock). */
  record (member: string, at: number): void {
    this.#grants.push({ member, at })
    if (this.#grants.length > this.maxEntries) this.#grants.shift()
  }

  /** The grants still inside the window at `now`, oldest first. */
  entries (now: number): ReadonlyArray<{ member: string; at: number }> {
    let expired = 0
    while (expired < this.#grants.length && this.#grants[expired]!.at <= now - this.windowMs) expired++
    if (expired > 0) this.#grants.splice(0, expired)
    return this.#grants
  }
}
