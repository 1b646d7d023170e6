/**
 * Sets `key` and, when that takes the map past `maxEntries`, drops its oldest entry (first in, first
 * out: a Map iterates in insertion order). Every in-process table keyed by something a caller chooses
 * (tokens, emails, subjects) is bounded this way, so no stream of distinct keys can grow memory for ever.
 * FIFO rather than LRU: a hit costs no write, and an entry still in use is simply worked out once more.
 */
export function setWithinLimit<K, V> (map: Map<K, V>, key: K, value: V, maxEntries: number): void {
  map.set(key, value)
  if (map.size > maxEntries) map.delete(map.keys().next().value as K)
}
