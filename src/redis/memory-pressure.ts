/**
 * Whether Redis is dropping keys to stay under maxmemory. Such a Redis still answers every command, so
 * nothing fails: tokens, locks and logouts simply vanish. Only INFO tells.
 */

export interface MemoryReport {
  /** 0 when no maxmemory is set. */
  maxBytes: number
  usedBytes: number
  policy: string
  evictedKeys: number
}

/** Starts counting as evicting from this share of maxmemory, stops only below the lower one: no flapping at the edge. */
const EVICTING_FROM = 0.9
const EVICTING_UNTIL = 0.8

/** The fields of `INFO memory` and `INFO stats` that matter here, or undefined when they are missing. */
export function parseMemoryReport (info: string): MemoryReport | undefined {
  const fields = new Map<string, string>()
  for (const line of info.split('\n')) {
    const colon = line.indexOf(':')
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim())
  }
  const maxBytes = Number(fields.get('maxmemory'))
  const usedBytes = Number(fields.get('used_memory'))
  const evictedKeys = Number(fields.get('evicted_keys'))
  const policy = fields.get('maxmemory_policy')
  if (policy === undefined || ![maxBytes, usedBytes, evictedKeys].every(Number.isFinite)) return undefined
  return { maxBytes, usedBytes, policy, evictedKeys }
}

/**
 * Evicting: a policy that evicts, and memory near maxmemory or keys evicted since the previous report.
 * With `noeviction` a full Redis refuses writes instead, and the refusals themselves say so.
 */
export function isEvicting (report: MemoryReport, previous: MemoryReport | undefined, wasEvicting: boolean): boolean {
  if (report.maxBytes <= 0 || report.policy === 'noeviction') return false
  if (previous !== undefined && report.evictedKeys > previous.evictedKeys) return true
  return report.usedBytes >= report.maxBytes * (wasEvicting ? EVICTING_UNTIL : EVICTING_FROM)
}
