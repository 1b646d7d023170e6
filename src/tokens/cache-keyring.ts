import { secretList } from '../config/env-reader.js'
import type { RotatingValue } from '../secrets/rotating-value.js'

/** HubSpot tokens whose derived cache keys stay readable after a rotation: the current one and the one before. */
const HUBSPOT_TOKENS_KEPT = 2

/**
 * The token cache's key material, newest first, for createCacheCrypto: CACHE_KEY's keys when it is
 * set, then the HubSpot access tokens this process has used (the current one first). New entries are
 * written with the first; the rest stay readable. So with CACHE_KEY a HubSpot token rotation changes
 * nothing, setting CACHE_KEY for the first time keeps the entries written before it, and without it a
 * rotation while running keeps the old entries readable here (a process started with the new token
 * cannot know the old one: it mints each identity once more).
 */
export function cacheKeyRing (cacheKey: RotatingValue<string | undefined>, hubspotToken: RotatingValue<string>): () => readonly string[] {
  let tokens = [hubspotToken.current]
  let ring: readonly string[] = []
  const rebuild = (): void => {
    ring = [...(cacheKey.current === undefined ? [] : secretList(cacheKey.current)), ...tokens]
  }
  rebuild()
  hubspotToken.onChange(next => {
    tokens = [next, ...tokens.filter(token => token !== next)].slice(0, HUBSPOT_TOKENS_KEPT)
    rebuild()
  })
  cacheKey.onChange(rebuild)
  return () => ring
}
