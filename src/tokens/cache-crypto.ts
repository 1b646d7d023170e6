import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto'
import type { CachedToken } from './token-cache.js'
import { setWithinLimit } from '../bounded-map.js'

/**
 * What keeps the shared cache unreadable to anyone with access to Redis: keys are a keyed hash of the
 * email, values are AES-256-GCM sealed, and both keys come through HKDF from the cache's key material:
 * CACHE_KEY when set, else the HubSpot access token. The material is a ring, newest first: new entries
 * are named and sealed with the newest, and entries of the older ones stay readable (under their own
 * names: `olderEmailHashes`) until they expire, so replacing a key costs no one a new token.
 */
export interface CacheCrypto {
  /**
   * base64url HMAC-SHA256 of the normalised email under the newest key: the variable part of every
   * per-identity Redis key. With `owner` (see Remembered), worked out once per owner and key ring.
   */
  emailHash: (email: string, owner?: object) => string
  /** The same hash under each older key of the ring, newest first (none when there is one key). */
  olderEmailHashes: (email: string) => string[]
  /** IV (12 bytes) ‖ ciphertext ‖ tag (16 bytes), bound to `redisKey` as associated data. */
  seal: (redisKey: string, entry: CachedToken) => Buffer
  /**
   * The entry, or undefined when the value was not sealed for this key under any key of the ring. With
   * `owner`, the same sealed bytes under the same name and ring are opened once per owner.
   */
  open: (redisKey: string, sealed: Buffer, owner?: object) => CachedToken | undefined
}

/**
 * What was worked out for one owner (an identity's cache key object, which lives as long as its
 * verified session), valid while `ring` is the current key ring. A warm hit reads the same sealed
 * value again and again: its email hash and its AES-GCM open (about a tenth of a Redis-mode hit's
 * CPU) are worked out once per value instead of once per request. An open is only reused for the
 * identical bytes under the identical name and ring, so what it answers is what opening again would.
 */
interface Remembered {
  ring: readonly string[]
  email?: string
  emailHash?: string
  opened?: { redisKey: string; sealed: Buffer; entry: CachedToken | undefined }
}

const IV_BYTES = 12
const TAG_BYTES = 16
const HKDF_SALT = 'chat-token'

/** HKDF-SHA256 of one key's material: a derived key never reveals the material, nor the other key. */
function deriveKey (material: string, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', material, HKDF_SALT, info, 32))
}

interface DerivedKeys {
  hashKey: Buffer
  valueKey: Buffer
}

/** A ring of one key, always the same array: what an owner remembers is tied to the ring array. */
function fixedRing (key: string): () => readonly string[] {
  const ring = [key]
  return () => ring
}

/** Most key materials whose derived keys are kept (a ring is a few keys; rotations add one each). */
const MAX_DERIVED = 16

/**
 * `keys`: the material, or a function giving the current ring (newest first, never empty), asked on
 * every use so that a rotation applies at once.
 */
export function createCacheCrypto (keys: string | (() => readonly string[])): CacheCrypto {
  const ring = typeof keys === 'string' ? fixedRing(keys) : keys
  const derived = new Map<string, DerivedKeys>()
  const derive = (material: string): DerivedKeys => {
    let found = derived.get(material)
    if (found === undefined) {
      found = { hashKey: deriveKey(material, 'chat-token cache key'), valueKey: deriveKey(material, 'chat-token cache value') }
      setWithinLimit(derived, material, found, MAX_DERIVED)
    }
    return found
  }
  const hashWith = (material: string, email: string): string => createHmac('sha256', derive(material).hashKey).update(email).digest('base64url')
  const remembered = new WeakMap<object, Remembered>()
  /** The owner's record for the current ring (a new, empty one when the ring changed). */
  const recordOf = (owner: object, current: readonly string[]): Remembered => {
    let record = remembered.get(owner)
    if (record?.ring !== current) {
      record = { ring: current }
      remembered.set(owner, record)
    }
    return record
  }

  function openWithRing (current: readonly string[], redisKey: string, sealed: Buffer): CachedToken | undefined {
    if (sealed.length <= IV_BYTES + TAG_BYTES) return undefined
    for (const material of current) {
      const entry = openWith(derive(material).valueKey, redisKey, sealed)
      if (entry !== undefined) return entry
    }
    return undefined
  }

  function openWith (valueKey: Buffer, redisKey: string, sealed: Buffer): CachedToken | undefined {
    try {
      const decipher = createDecipheriv('aes-256-gcm', valueKey, sealed.subarray(0, IV_BYTES))
      decipher.setAAD(Buffer.from(redisKey))
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES))
      const plain = Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()])
      return parseEntry(plain.toString('utf8'))
    } catch {
      // Another key's entry, or a value copied under another key name: a miss, never an error.
      return undefined
    }
  }

  return {
    emailHash: (email, owner) => {
      const current = ring()
      if (owner === undefined) return hashWith(current[0]!, email)
      const record = recordOf(owner, current)
      // An owner names one identity; a different email is worked out afresh, never answered from it.
      if (record.emailHash === undefined || record.email !== email) {
        record.email = email
        record.emailHash = hashWith(current[0]!, email)
      }
      return record.emailHash
    },
    olderEmailHashes: email => ring().slice(1).map(material => hashWith(material, email)),

    seal (redisKey, entry) {
      const iv = randomBytes(IV_BYTES)
      const cipher = createCipheriv('aes-256-gcm', derive(ring()[0]!).valueKey, iv)
      cipher.setAAD(Buffer.from(redisKey))
      const plain = JSON.stringify({ token: entry.token, issuedAt: entry.issuedAt, fingerprint: entry.fingerprint })
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()])
      return Buffer.concat([iv, body, cipher.getAuthTag()])
    },

    open (redisKey, sealed, owner) {
      const current = ring()
      if (owner === undefined) return openWithRing(current, redisKey, sealed)
      const record = recordOf(owner, current)
      const last = record.opened
      if (last !== undefined && last.redisKey === redisKey && last.sealed.equals(sealed)) return last.entry
      const entry = openWithRing(current, redisKey, sealed)
      // A copy: the reply's bytes may be a slice of a much larger buffer.
      record.opened = { redisKey, sealed: Buffer.from(sealed), entry: entry === undefined ? undefined : Object.freeze(entry) }
      return entry
    }
  }
}

function parseEntry (text: string): CachedToken | undefined {
  const value = JSON.parse(text) as Record<string, unknown>
  const { token, issuedAt, fingerprint } = value
  return typeof token === 'string' && typeof issuedAt === 'number' && typeof fingerprint === 'string'
    ? { token, issuedAt, fingerprint }
    : undefined
}
