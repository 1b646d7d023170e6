import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto'
import type { CachedToken } from './token-cache.js'

/**
 * What keeps the shared cache unreadable to anyone with access to Redis: keys are a keyed hash of the
 * email, values are AES-256-GCM sealed, and both keys come from the HubSpot access token through HKDF,
 * so rotating the access token makes every old entry unreachable and undecryptable at once.
 */
export interface CacheCrypto {
  /** base64url HMAC-SHA256 of the normalised email: the variable part of every per-identity Redis key. */
  emailHash: (email: string) => string
  /** IV (12 bytes) ‖ ciphertext ‖ tag (16 bytes), bound to `redisKey` as associated data. */
  seal: (redisKey: string, entry: CachedToken) => Buffer
  /** The entry, or undefined when the value was not sealed for this key under this access token. */
  open: (redisKey: string, sealed: Buffer) => CachedToken | undefined
}

const IV_BYTES = 12
const TAG_BYTES = 16
const HKDF_SALT = 'chat-token'

function deriveKey (accessToken: string, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', accessToken, HKDF_SALT, info, 32))
}

export function createCacheCrypto (accessToken: string): CacheCrypto {
  const hashKey = deriveKey(accessToken, 'chat-token cache key')
  const valueKey = deriveKey(accessToken, 'chat-token cache value')

  return {
    emailHash: email => createHmac('sha256', hashKey).update(email).digest('base64url'),

    seal (redisKey, entry) {
      const iv = randomBytes(IV_BYTES)
      const cipher = createCipheriv('aes-256-gcm', valueKey, iv)
      cipher.setAAD(Buffer.from(redisKey))
      const plain = JSON.stringify({ token: entry.token, issuedAt: entry.issuedAt, fingerprint: entry.fingerprint })
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()])
      return Buffer.concat([iv, body, cipher.getAuthTag()])
    },

    open (redisKey, sealed) {
      if (sealed.length <= IV_BYTES + TAG_BYTES) return undefined
      try {
        const decipher = createDecipheriv('aes-256-gcm', valueKey, sealed.subarray(0, IV_BYTES))
        decipher.setAAD(Buffer.from(redisKey))
        decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES))
        const plain = Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()])
        return parseEntry(plain.toString('utf8'))
      } catch {
        // Another access token's entry, or a value copied under another key: a miss, never an error.
        return undefined
      }
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
